"""Group video calls in a mesh: two Chromiums and a Firefox see and hear each other."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from harness.calls import wait_until
from harness.groupcalls import (
    hang_up,
    in_call,
    make_group,
    open_group,
    screen,
    start_and_answer,
    wait_media_from,
)
from harness.people import SCREENSHOTS, User
from harness.servers import ParleyServer
from harness.viewports import phone

# Three browsers in a mesh, joined, left and joined again, on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)


def test_three_browsers_in_a_group_call_leave_and_join_again(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    alice = make_user("chromium")
    bob = make_user("chromium", **phone("chromium"))
    carol = make_user("firefox")
    people = [alice, bob, carol]
    room, name = make_group(alice, [bob, carol], server)
    for person in people:
        open_group(person, room)
    start_and_answer(alice, [bob, carol], name)
    in_call(people)

    # On a phone the grid of three fits the screen, no scrolling; each tile is on it.
    page = bob.page
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "group-call-phone.png"))
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight + 1")
    height = page.viewport_size["height"] if page.viewport_size else 844
    for tile in screen(page).get_by_role("group").all():
        box = tile.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, box
    expect(screen(page).get_by_role("button", name="Leave call")).to_be_in_viewport()

    # Firefox's fake microphone plays a steady tone: carol's tile lights up as speaking, and not
    # once she mutes.
    carol_tile = screen(alice.page).get_by_role("group", name=carol.username)
    expect(carol_tile).to_have_class(re.compile(r"\bspeaking\b"), timeout=30_000)
    screen(carol.page).get_by_role("button", name="Mute").click()
    expect(carol_tile).to_contain_text("Muted")
    expect(carol_tile).not_to_have_class(re.compile(r"\bspeaking\b"))
    screen(carol.page).get_by_role("button", name="Unmute").click()

    # carol leaves: the other two carry on, with one tile each.
    screen(carol.page).get_by_role("button", name="Leave call").click()
    expect(screen(carol.page)).to_be_hidden()
    for user in (alice, bob):
        expect(screen(user.page).get_by_label(f"Video of {carol.username}")).to_have_count(0)
    wait_media_from(alice, [bob])
    wait_media_from(bob, [alice])

    # ... and comes back with Join call.
    carol.page.get_by_role("button", name="Join call").first.click()
    in_call(people)
    hang_up(people)


def test_a_reload_mid_call_comes_back_and_the_others_keep_their_media(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    alice, bob, carol = make_user("chromium"), make_user("chromium"), make_user("firefox")
    people = [alice, bob, carol]
    room, name = make_group(alice, [bob, carol], server)
    for person in people:
        open_group(person, room)
    start_and_answer(alice, [bob, carol], name)
    in_call(people)

    bob.page.reload()
    # alice and carol never lose each other; bob's page takes the call up again by itself.
    wait_media_from(alice, [carol])
    wait_media_from(carol, [alice])
    in_call(people)
    wait_until(
        lambda: bob.page.evaluate("window.parley.groups.call.connectedAt") is not None,
        "bob's duration restarted from nothing",
    )
    hang_up(people)
