"""A group call as people make it in their browsers: a group, its ring, tiles and moving media."""

from __future__ import annotations

import re
import secrets
import time

from playwright.sync_api import Locator, Page, expect

from harness.browsers import OWN_CONNECTION
from harness.people import User
from harness.servers import ParleyServer

MEDIA_SECONDS = 90  # three meshes of fake media on two shared cores take their time


def make_group(owner: User, others: list[User], server: ParleyServer) -> tuple[int, str]:
    """`owner` creates a group of everyone through the API; return its room id and name."""
    name = f"Trip {secrets.token_hex(2)}"
    response = owner.context.request.post(
        "/api/groups",
        data={"name": name, "usernames": [o.username for o in others]},
        headers={"Origin": server.url, **OWN_CONNECTION},
    )
    assert response.status == 201, response.text()
    return int(response.json()["id"]), name


def open_group(user: User, room: int) -> None:
    """Open the group's room, where Video call and Join call are."""
    user.page.evaluate("(id) => { location.hash = `#/room/${id}`; }", room)
    expect(user.page.get_by_role("textbox", name="Message")).to_be_visible()
    # Known as a group on this page (not only by its address): Video call starts a group call.
    user.page.wait_for_function("(id) => window.parley.chat.room(id)?.kind === 'group'", arg=room)


def screen(page: Page) -> Locator:
    """Return the group call screen of the page."""
    return page.get_by_role("region", name="Group call")


def remote_media(user: User) -> dict[str, tuple[int, int]]:
    """Video frames decoded and audio bytes received from each connected participant."""
    got = user.page.evaluate(
        """async () => {
            const all = (window.parley.groups && await window.parley.groups.stats()) || {};
            const out = {};
            for (const [name, s] of Object.entries(all)) {
                if (s && s.connectionState === "connected")
                    out[name] = [s.video.framesDecoded, s.audio.bytesReceived];
            }
            return out;
        }"""
    )
    return {name: (int(v[0]), int(v[1])) for name, v in got.items()}


def wait_media_from(user: User, others: list[User], seconds: float = MEDIA_SECONDS) -> None:
    """Each of `others`' video advances by 10 frames and their audio bytes rise on `user`'s page."""
    wait_media_from_names(user, {o.username for o in others}, seconds)


def wait_media_from_names(user: User, names: set[str], seconds: float = MEDIA_SECONDS) -> None:
    """Each of `names`' video advances by 10 frames and their audio bytes rise on `user`'s page."""
    first: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + seconds
    now: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        now = remote_media(user)
        for name in names:
            if name not in now or (name in first and now[name][0] < first[name][0]):
                first.pop(name, None)  # not connected, or a new connection: count again
            else:
                first.setdefault(name, now[name])
        moving = {
            name
            for name in first
            if name in now and now[name][0] - first[name][0] >= 10 and now[name][1] > first[name][1]
        }
        if moving >= names:
            return
        time.sleep(0.5)
    raise AssertionError(f"{user.engine} {user.username}: media from {names} not moving: {now}")


def in_call(people: list[User]) -> None:
    """Every one of `people` sees the others' tiles and gets their moving video and sound."""
    for user in people:
        others = [p for p in people if p is not user]
        expect(screen(user.page).get_by_role("status")).to_have_text("Connected", timeout=60_000)
        for other in others:
            expect(screen(user.page).get_by_label(f"Video of {other.username}")).to_be_visible()
        expect(screen(user.page).get_by_label(re.compile("^Video of "))).to_have_count(len(others))
    for user in people:
        wait_media_from(user, [p for p in people if p is not user])


def hang_up(people: list[User]) -> None:
    """All but the last leave; with one left the call is over for them too."""
    for user in people[:-1]:
        screen(user.page).get_by_role("button", name="Leave call").click()
        expect(screen(user.page)).to_be_hidden()
    expect(screen(people[-1].page)).to_be_hidden(timeout=60_000)


def call_and_accept(caller: User, callee: User, room: int) -> None:
    """Both open the group's room; the caller taps Video call and the callee taps Accept."""
    for user in (caller, callee):
        open_group(user, room)
    caller.page.get_by_role("button", name="Video call").click()
    expect(screen(caller.page)).to_be_visible()
    incoming = callee.page.get_by_role("alertdialog", name="Incoming call")
    incoming.get_by_role("button", name="Accept").click(timeout=60_000)


def start_and_answer(caller: User, callees: list[User], group: str) -> None:
    """The caller taps Video call; each callee sees the group ring and taps Accept."""
    caller.page.get_by_role("button", name="Video call").click()
    expect(screen(caller.page)).to_be_visible()
    for callee in callees:
        dialog = callee.page.get_by_role("alertdialog", name="Incoming call")
        expect(dialog).to_contain_text(f"{caller.username} is calling")
        expect(dialog).to_contain_text(f"Group video call in {group}")
        dialog.get_by_role("button", name="Accept").click()


def tile_time(tile: Locator) -> tuple[float, int]:
    """How far a remote tile's video has played, and its picture's width (0: no picture)."""
    played, width = tile.evaluate("(video) => [video.currentTime, video.videoWidth]")
    return float(played), int(width)


def video_moves(user: User, names: list[str], seconds: float = 120) -> None:
    """Each of `names`' tiles on `user`'s call screen shows a picture that keeps playing."""
    screen = user.page.get_by_role("region", name="Group call")
    tiles = {name: screen.get_by_label(f"Video of {name}") for name in names}
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
