"""A group video call of two browsers and two Python peers: everyone sees and hears everyone."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from harness import aio
from harness.groupcalls import open_group, screen
from harness.grouppeers import ENV, join_command, make_group, stats_of
from harness.people import SCREENSHOTS, User
from harness.servers import ROOT, ParleyServer
from harness.viewports import phone

pytestmark = pytest.mark.timeout(900)  # two browsers and two aiortc peers on two shared cores
KINDS = ("audio", "video")


def tile_time(tile: Locator) -> tuple[float, int]:
    """How far a remote tile's video has played, and its picture's width (0: no picture)."""
    played, width = tile.evaluate("(video) => [video.currentTime, video.videoWidth]")
    return float(played), int(width)


def video_moves(user: User, names: list[str], seconds: float = 120) -> None:
    """Each of `names`' tiles on `user`'s call screen shows a picture that keeps playing."""
    tiles = {name: screen(user.page).get_by_label(f"Video of {name}") for name in names}
    first: dict[str, float] = {}
    deadline = time.monotonic() + seconds
    while True:
        now = {name: tile_time(tile) for name, tile in tiles.items() if tile.count() == 1}
        for name, (played, width) in now.items():
            if width > 0:
                first.setdefault(name, played)
        moving = [n for n in first if now.get(n, (0.0, 0))[0] > first[n] + 2]
        if sorted(moving) == sorted(names):
            return
        assert time.monotonic() < deadline, f"{user.username}: tiles {now}, moving {moving}"
        time.sleep(0.5)


def fits_the_phone(user: User, names: list[str]) -> None:
    """The four tiles and the controls are all on `user`'s phone screen, which does not scroll."""
    page = user.page
    region = screen(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "group-call-4-phone.png"))
    size = page.viewport_size or {"width": 390, "height": 844}
    on_screen = [
        *(region.get_by_label(f"Video of {name}") for name in names),
        region.get_by_label("Your video", exact=True),
        *(
            region.get_by_role("button", name=n, exact=True)
            for n in ("Mute", "Camera off", "Leave call")
        ),
    ]
    for item in on_screen:
        expect(item).to_be_visible()
        box = item.bounding_box()
        assert box, item
        assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 0.5, (item, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 0.5, (item, box)
    assert region.evaluate(
        """(screen) => {
            const page = document.scrollingElement;
            window.scrollTo(0, 1000);
            return page.scrollHeight <= innerHeight + 1 && page.scrollWidth <= innerWidth + 1
                && scrollY === 0 && screen.scrollHeight <= screen.clientHeight + 1;
        }"""
    ), "the phone's page (or its call screen) scrolls"


def test_two_browsers_and_two_python_peers_in_one_group_video_call_and_a_fifth_finds_it_full(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    # alice holds the call on a phone; carol, the group's fifth member, comes when it is full.
    alice, bob = make_user("chromium", **phone("chromium")), make_user("firefox")
    carol = make_user("chromium")
    bots = [f"py{secrets.token_hex(3)}", f"py{secrets.token_hex(3)}"]
    members = [alice.username, bob.username, carol.username, *bots]
    room_id = aio.run(make_group(server, members))
    # The Python peers wait for the room's call to ring, then join it.
    peers = {
        name: subprocess.Popen(
            join_command(server, name, room_id, "--wait", "180", "--seconds", "600"),
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in bots
    }
    ended: dict[str, dict[str, Any]] = {}
    try:
        for user in (alice, bob, carol):
            open_group(user, room_id)
        bob.page.get_by_role("button", name="Video call").click()
        dialog = alice.page.get_by_role("alertdialog", name="Incoming call")
        dialog.get_by_role("button", name="Accept").click(timeout=60_000)
        carol.page.get_by_role("alertdialog", name="Incoming call").get_by_role(
            "button", name="Decline"
        ).click(timeout=60_000)

        # Each browser shows the three others' tiles, every one with moving video.
        for user, other in ((alice, bob), (bob, alice)):
            names = [other.username, *bots]
            for name in names:
                expect(screen(user.page).get_by_label(f"Video of {name}")).to_be_visible(
                    timeout=120_000
                )
            video_moves(user, names)
        # On alice's phone the grid of four fits the screen.
        fits_the_phone(alice, [bob.username, *bots])

        # carol taps Join call: the call is full, she is told so and stays out of it.
        join = carol.page.get_by_role("button", name="Join call", exact=True)
        join.click()
        full = carol.page.get_by_role("alert").filter(has_text="This call is full")
        expect(full.first).to_be_visible(timeout=60_000)
        expect(screen(carol.page)).to_be_hidden()
        expect(join).to_be_visible()
        # ... and the four carry on.
        for user, other in ((alice, bob), (bob, alice)):
            names = [other.username, *bots]
            expect(screen(user.page).get_by_label(re.compile("^Video of "))).to_have_count(3)
            video_moves(user, names)
    finally:
        for name, process in peers.items():
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=90)
            ended[name] = stats_of(out, err, process.returncode)
            print(ended[name].pop("log"))  # shown when the test fails

    # The Python peers got sound and pictures from the browsers and from each other (not carol).
    for me, stats in ended.items():
        assert stats["joined"], stats
        others = stats["participants"]
        assert set(others) == {alice.username, bob.username, *bots} - {me}, stats
        for name, pair in others.items():
            for kind in KINDS:
                assert pair["frames_received"][kind] > 0, (me, name, kind, pair)
    # bob leaves too: one left is no call, and alice's call screen closes as well.
    screen(bob.page).get_by_role("button", name="Leave call").click()
    for user in (alice, bob):
        expect(screen(user.page)).to_be_hidden()
