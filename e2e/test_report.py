"""The call report card: after a call both rooms read "Video call · 0:07 · direct · good"."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from harness.browsers import OWN_CONNECTION
from harness.calls import connected_call, status, wait_media_flowing, wait_until
from harness.people import SCREENSHOTS, User, room_id

# "Video call · 0:07 · direct · good": the duration, the path, then the quality word.
CARD = r"Video call · \d+:\d\d · {path} · (good|fair|poor)"


def record(user: User, pattern: str) -> Locator:
    """The call record in the user's open room that reads like `pattern`."""
    log = user.page.get_by_role("log", name="Messages")
    return log.get_by_role("listitem").filter(has_text=re.compile(pattern))


def sampled(user: User) -> bool:
    """Whether the live call's report card has seen the selected candidate pair yet."""
    return bool(
        user.page.evaluate("() => Boolean(window.parley.calls.call?.card?.pair)")  # see stats.js
    )


def call_and_hang_up(alice: User, bob: User) -> None:
    """Media both ways, a sample of the path on both sides, then alice ends the call."""
    wait_media_flowing(bob, video=True)
    wait_until(lambda: sampled(alice) and sampled(bob), "no stats walk saw the path", 30)
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


def reports(user: User) -> dict[str, Any]:
    """The reports of the newest call record in the user's open room, as the API gives them."""
    response = user.context.request.get(
        f"/api/rooms/{room_id(user.page)}/messages", headers=OWN_CONNECTION
    )
    assert response.ok, response.text()
    calls = [m["call"] for m in response.json()["messages"] if m["kind"] == "call"]
    found: dict[str, Any] = calls[-1]["reports"]
    return found


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("chromium", "firefox")], ids="-".join
)
def test_a_direct_call_shows_direct_in_the_record_on_both_sides(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = connected_call(make_user, engines)
    call_and_hang_up(alice, bob)
    # Both sides' records update live (the server pushes each report to both), no reload needed.
    for someone in (alice, bob):
        expect(record(someone, CARD.format(path="direct"))).to_be_visible(timeout=20_000)
    wait_until(lambda: all(reports(alice).values()), f"both reports: {reports(alice)}", 20)
    sides = reports(bob)
    for side in ("caller", "callee"):
        assert sides[side]["path"] == "direct", sides
        assert sides[side]["transport"] == "udp", sides
        assert sides[side]["duration_s"] >= 1, sides
    # And a reload reads it from the API.
    bob.page.reload()
    expect(record(bob, CARD.format(path="direct"))).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    expect(status(alice.page)).to_be_hidden()  # the ended call screen gives way to the room
    alice.page.set_viewport_size({"width": 1280, "height": 800})
    alice.page.screenshot(path=str(SCREENSHOTS / f"report-card-desktop-{engines[0]}.png"))
    bob.page.set_viewport_size({"width": 390, "height": 844})
    bob.page.screenshot(path=str(SCREENSHOTS / f"report-card-phone-{engines[1]}.png"))


def test_a_relay_only_call_shows_relayed(relay_user: Callable[[str], User]) -> None:
    alice, bob = connected_call(relay_user, ("chromium", "chromium"))
    call_and_hang_up(alice, bob)
    for someone in (alice, bob):
        expect(record(someone, CARD.format(path="relayed"))).to_be_visible(timeout=20_000)
    wait_until(lambda: all(reports(alice).values()), f"both reports: {reports(alice)}", 20)
    sides = reports(alice)
    for side in ("caller", "callee"):
        assert sides[side]["path"] == "relayed", sides
        assert sides[side]["transport"] == "udp", sides  # the test coturn listens on UDP
    expect(status(alice.page)).to_be_hidden()
    alice.page.set_viewport_size({"width": 390, "height": 844})
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(SCREENSHOTS / "report-card-relayed-phone.png"))
