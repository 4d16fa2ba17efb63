"""A group video call of two browsers and two Python peers: everyone sees and hears everyone."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from harness import aio
from harness.groupcalls import call_and_accept, screen, video_moves
from harness.grouppeers import ENV, join_command, make_group, stats_of, stopped, wait_frames_from
from harness.people import SCREENSHOTS, User
from harness.servers import ROOT, ParleyServer
from harness.viewports import phone
from harness.wsclient import Person

pytestmark = pytest.mark.timeout(900)  # two browsers and two aiortc peers on two shared cores
KINDS = ("audio", "video")


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


def test_two_browsers_and_two_python_peers_in_one_group_video_call(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    # alice holds the call on a phone: the grid of four fits its screen.
    alice, bob = make_user("chromium", **phone("chromium")), make_user("firefox")
    bots = [f"py{secrets.token_hex(3)}", f"py{secrets.token_hex(3)}"]
    fifth = f"ws{secrets.token_hex(3)}"  # a fifth member, on a signalling socket of its own
    room_id = aio.run(make_group(server, [alice.username, bob.username, *bots, fifth]))
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
    try:
        call_and_accept(alice, bob, room_id)

        # Each browser shows the three others' tiles, every one with moving video.
        for user, other in ((alice, bob), (bob, alice)):
            names = [other.username, *bots]
            for name in names:
                expect(screen(user.page).get_by_label(f"Video of {name}")).to_be_visible(
                    timeout=120_000
                )
            video_moves(user, names)
        # ... and each Python peer gets sound and pictures from the three others.
        everyone = {alice.username, bob.username, *bots}
        for name, process in peers.items():
            wait_frames_from(process, everyone - {name})
        fits_the_phone(alice, [bob.username, *bots])

        # The fifth member finds the call of four full and never gets in.
        dan = Person(server, fifth)
        try:
            sock = dan.connect()
            (live,) = [c for c in sock.welcome["group_calls"] if c["room_id"] == room_id]
            sock.send({"type": "group_call_join", "call_id": live["call_id"]})
            refused = sock.expect("error", timeout=30)
            assert (refused["reason"], refused["call_id"]) == ("full", live["call_id"]), refused
        finally:
            dan.close()
        for user in (alice, bob):
            expect(screen(user.page).get_by_label(re.compile("^Video of "))).to_have_count(3)
    finally:
        outputs = {name: stopped(process) for name, process in peers.items()}
        for name, (_, err, _) in outputs.items():
            print(name, err.decode()[-4000:])  # shown when the test fails
    ended = {name: stats_of(*output) for name, output in outputs.items()}

    # The Python peers got sound and pictures from the browsers and from each other (none from
    # the fifth, who was never in).
    for me, stats in ended.items():
        assert stats["joined"], stats
        others = stats["participants"]
        assert set(others) == {alice.username, bob.username, *bots} - {me}, stats
        for name, pair in others.items():
            for kind in KINDS:
                assert pair["frames_received"][kind] > 0, (me, name, kind, pair)
    # Alice leaves too: one left is no call, and Bob's call screen closes as well.
    alice.page.get_by_role("button", name="Leave call").click()
    for user in (alice, bob):
        expect(user.page.get_by_role("region", name="Group call")).to_be_hidden()
