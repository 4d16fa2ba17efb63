"""The call screen says who is there: the callee while ringing, a muted or camera-off peer by name,
the whole remote picture, a full-screen incoming call on phones, and no live controls after the end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from harness.calls import place_call, status, wait_media_flowing
from harness.people import SCREENSHOTS, User, open_room
from harness.viewports import DESKTOP, PHONE


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def peer_card(page: Page):  # type: ignore[no-untyped-def]
    """Who the other person is, shown instead of their picture."""
    return page.get_by_role("region", name="Call").locator("#audio-only")


def object_fit(page: Page) -> str:
    return str(page.get_by_label("Remote video").evaluate("(v) => getComputedStyle(v).objectFit"))


def test_a_ringing_video_call_shows_the_callee_and_a_phone_rings_full_screen(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium", **PHONE), make_user("chromium", **PHONE)
    open_room(alice, bob)
    place_call(alice, bob)

    # The caller sees who rings, not black.
    card = peer_card(alice.page)
    expect(card).to_be_visible()
    expect(card.get_by_text(bob.username, exact=True)).to_be_visible()
    avatar = alice.page.locator("#avatar")
    expect(avatar).to_be_visible()
    expect(avatar).to_have_text(bob.username[0].upper())
    expect(alice.page.locator("#remote-camera-off")).to_be_hidden()
    shot(alice.page, "call-ringing-phone")

    # The callee's phone is all incoming call: the caller's name and avatar, big buttons.
    dialog = bob.page.get_by_role("alertdialog", name="Incoming call")
    box = dialog.bounding_box()
    assert box is not None
    assert abs(box["x"]) <= 1 and abs(box["y"]) <= 1, box
    assert abs(box["width"] - 390) <= 1 and abs(box["height"] - 844) <= 1, box
    expect(dialog.get_by_text(f"{alice.username} is calling")).to_be_visible()
    expect(dialog.locator("#incoming-avatar")).to_have_text(alice.username[0].upper())
    expect(dialog.locator("#incoming-avatar")).to_be_visible()
    for name in ("Accept", "Decline"):
        button = dialog.get_by_role("button", name=name)
        expect(button).to_be_visible()
        size = button.bounding_box()
        assert size is not None and size["height"] >= 44, (name, size)
    shot(bob.page, "incoming-call-phone")

    dialog.get_by_role("button", name="Decline").click()
    expect(status(alice.page)).to_have_text("Call ended · Declined")


@pytest.mark.parametrize("caller_engine", ["chromium", "firefox"])
def test_the_other_side_sees_who_is_muted_or_off_camera_and_the_whole_picture(
    make_user: Callable[..., User], caller_engine: str
) -> None:
    alice = make_user(caller_engine, **DESKTOP)
    bob = make_user("chromium", **PHONE)
    open_room(alice, bob)
    place_call(alice, bob)
    expect(peer_card(alice.page).get_by_text(bob.username, exact=True)).to_be_visible()
    if caller_engine == "chromium":
        shot(alice.page, "call-ringing-desktop")
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    # Connected with both cameras on: the picture, no card, no marks.
    for person in (alice, bob):
        expect(peer_card(person.page)).to_be_hidden()
        expect(person.page.locator("#remote-muted")).to_be_hidden()

    # Each mutes and turns the camera off; the other sees it, by name, from signalling.
    for person, other in ((bob, alice), (alice, bob)):
        person.page.get_by_role("button", name="Mute").click()
        expect(other.page.locator("#remote-muted")).to_have_text("Muted")
        expect(other.page.locator("#remote-muted")).to_be_visible()
        expect(peer_card(other.page)).to_be_hidden()  # muted only: still their picture
        person.page.get_by_role("button", name="Camera off").click()
        card = peer_card(other.page)
        expect(card).to_be_visible()
        expect(card.get_by_text(person.username, exact=True)).to_be_visible()
        expect(card.locator("#avatar")).to_have_text(person.username[0].upper())
        expect(card.get_by_text("Camera off", exact=True)).to_be_visible()
    if caller_engine == "chromium":
        shot(bob.page, "call-remote-off-phone")
        shot(alice.page, "call-remote-off-desktop")

    # Back on: the picture again, whole (contain); a tap on the phone fills, another restores.
    for person, other in ((alice, bob), (bob, alice)):
        person.page.get_by_role("button", name="Camera on").click()
        person.page.get_by_role("button", name="Unmute").click()
        expect(peer_card(other.page)).to_be_hidden()
        expect(other.page.locator("#remote-muted")).to_be_hidden()
    assert object_fit(alice.page) == "contain"
    assert object_fit(bob.page) == "contain"
    remote = bob.page.get_by_label("Remote video")
    remote.tap()
    expect(remote).to_have_css("object-fit", "cover")
    remote.tap()
    expect(remote).to_have_css("object-fit", "contain")

    # Ending: the controls go in the same tap on this side, and as the end arrives on the other.
    bob.page.evaluate(
        """() => {
            window.controlsWhenEnded = null;
            window.parley.calls.addEventListener("ended", () => {
                const section = document.getElementById("call");
                window.controlsWhenEnded = ["mute", "camera", "hangup"].map(
                    (id) => section.querySelector("#" + id).checkVisibility());
            }, { once: true });
        }"""
    )
    visible_after_click = alice.page.evaluate(
        """() => {
            document.getElementById("hangup").click();
            return ["mute", "camera", "hangup"].map(
                (id) => document.getElementById(id).checkVisibility());
        }"""
    )
    assert visible_after_click == [False, False, False]
    expect(status(alice.page)).to_contain_text("Call ended")
    expect(alice.page.get_by_role("button", name="End call")).to_be_hidden()
    bob.page.wait_for_function("() => window.controlsWhenEnded !== null")
    assert bob.page.evaluate("() => window.controlsWhenEnded") == [False, False, False]
