"""A call as people make it in their browsers, and the Python peer as a process beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from harness.people import PASSWORD, User
from harness.servers import ROOT, ParleyServer

RING = 10  # seconds the ringing server rings; every other server rings long enough to answer
RELAY_TTL = 4  # seconds the relay-only server's TURN credentials last (e2e/conftest.py)


def status(page: Page):  # type: ignore[no-untyped-def]
    """Return the call status line of the page."""
    return page.locator("#call-status")


def timeline(user: User, text: str):  # type: ignore[no-untyped-def]
    """Return what reads `text` in the timeline of the room the user has open."""
    return user.page.get_by_role("log", name="Messages").get_by_text(text)


def place_call(caller: User, callee: User, media: str = "video") -> None:
    """Have the caller ring the callee from their open room; return once the callee sees it."""
    button = "Video call" if media == "video" else "Voice call"
    caller.page.get_by_role("button", name=button).click()
    dialog = callee.page.get_by_role("alertdialog", name="Incoming call")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{caller.username} is calling")
    expect(dialog).to_contain_text("Video call" if media == "video" else "Voice call")
    expect(status(caller.page)).to_have_text("Ringing…")


def call_echo_test(me: User, media: str = "video") -> None:
    """Open the Echo test room and call the bot; return once the call is connected."""
    me.page.get_by_role("link", name="Echo test").click()
    expect(me.page.get_by_role("heading", name="Echo test")).to_be_visible()
    me.page.get_by_role("button", name="Video call" if media == "video" else "Voice call").click()
    expect(status(me.page)).to_have_text("Connected", timeout=30_000)


def video_call_round_trip(caller: User, callee: User, ender: User) -> None:
    """Caller rings, callee accepts, media flows both ways, `ender` hangs up, both rooms log it."""
    place_call(caller, callee)
    callee.page.get_by_role("button", name="Accept").click()
    for person in (caller, callee):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(caller, video=True)
    wait_media_flowing(callee, video=True)
    ender.page.get_by_role("button", name="End call").click()
    other = callee if ender is caller else caller
    expect(status(other.page)).to_contain_text("Call ended")
    for person in (caller, callee):
        expect(timeline(person, "Video call ·")).to_be_visible()


def wait_media_flowing(user: User, video: bool, seconds: float = 30) -> None:
    """framesDecoded up by 20 (video) and audio bytes rising, within `seconds`."""
    deadline = time.monotonic() + seconds
    first = None
    while time.monotonic() < deadline:
        stats = user.stats()
        if stats and stats["connectionState"] == "connected":
            if first is None:
                first = stats
            else:
                frames = stats["video"]["framesDecoded"] - first["video"]["framesDecoded"]
                audio = stats["audio"]["bytesReceived"] - first["audio"]["bytesReceived"]
                if audio > 0 and (not video or frames >= 20):
                    return
        time.sleep(0.25)
    raise AssertionError(f"media not flowing for {user.engine} {user.username}: {user.stats()}")


def wait_until(check: Callable[[], bool], why: str, seconds: float = 20) -> None:
    """Poll `check` until it holds; fail with `why` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(why)


def connected_call(make_user: Callable[..., User], engines: tuple[str, str]) -> tuple[User, User]:
    """Make alice and bob in `engines`; alice calls, bob accepts; return once media flows."""
    alice, bob = make_user(engines[0]), make_user(engines[1])
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=True)
    return alice, bob


def relay_call(relay_user: Callable[[str], User], engines: tuple[str, str]) -> tuple[User, User]:
    """A connected call between two people on the relay-only server, media flowing both ways."""
    alice, bob = connected_call(relay_user, engines)
    wait_media_flowing(bob, video=True)
    return alice, bob


def sent_media(user: User) -> tuple[int, int]:
    """Video frames encoded and audio packets sent so far by the user's call."""
    frames, packets = user.page.evaluate(
        """async () => {
            const s = await window.parley.calls.stats();
            return [s.video.framesEncoded, s.audio.packetsSent];
        }"""
    )
    return int(frames), int(packets)


def hang_up_once_sent(user: User, frames: int = 60, packets: int = 150) -> None:
    """End the call once the user has sent three times what the Python peer must have received.

    The peer runs until the call ends (its --seconds is only a cap), so a slow machine gets
    as long as it needs; a peer that hangs up on a clock races the browser's checks.
    """
    wait_until(
        lambda: all(n >= want for n, want in zip(sent_media(user), (frames, packets), strict=True)),
        f"{user.engine} did not send {frames} video frames and {packets} audio packets",
        60,
    )
    user.page.get_by_role("button", name="End call").click()


def run_peer(server: ParleyServer, *args: str) -> subprocess.Popen[str]:
    """Start the Python peer (python -m backend.peer ARGS) as its own account on `server`."""
    env = dict(
        os.environ,
        PARLEY_URL=server.url,
        PARLEY_CA_FILE=str(server.certs / "ca.crt"),
        PEER_USERNAME=f"pypeer{os.getpid()}{len(args)}",
        PEER_PASSWORD=PASSWORD,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "backend.peer", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def switch_network(user: User, trigger: str) -> None:
    """Tell the user's browser that the network changed, as it would learn of it."""
    if trigger == "online":
        # Offline, then online again: Chromium fires the real "online" event on window.
        user.context.set_offline(True)
        user.context.set_offline(False)
    elif trigger == "connection":
        # Another kind of network: Chromium fires "change" on navigator.connection.
        cdp = user.context.new_cdp_session(user.page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": 1_250_000,
                "uploadThroughput": 1_250_000,
                "connectionType": "cellular4g",
            },
        )
    else:  # the signalling socket drops (as on a new network) and reconnects
        user.page.evaluate("() => window.parley.signaling.ws.close(4001, 'network change')")
