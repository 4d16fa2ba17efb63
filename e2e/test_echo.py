"""Echo test and the Python peer, with browsers on the other end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from e2e.conftest import PASSWORD, User
from e2e.test_calls import status, wait_media_flowing, wait_until
from harness.servers import ROOT, ParleyServer


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_calling_echo_test_brings_your_own_video_and_audio_back(
    echo_bot: subprocess.Popen[bytes], make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    me.page.get_by_role("link", name="Echo test").click()
    expect(me.page.get_by_role("heading", name="Echo test")).to_be_visible()
    me.page.get_by_role("button", name="Video call").click()
    expect(status(me.page)).to_have_text("Connected", timeout=30_000)
    wait_media_flowing(me, video=True, seconds=40)  # audio comes back after the 2 s delay
    me.page.get_by_role("button", name="End call").click()
    expect(me.page.get_by_role("log", name="Messages").get_by_text("Video call ·")).to_be_visible()
    assert echo_bot.poll() is None


def sent_media(user: User) -> tuple[int, int]:
    """Video frames encoded and audio packets sent so far by the user's call."""
    frames, packets = user.page.evaluate(
        """async () => {
            const report = await window.parley.calls.call.pc.getStats();
            let frames = 0, packets = 0;
            report.forEach((s) => {
                const kind = s.kind || s.mediaType;
                if (s.type === "outbound-rtp" && kind === "video") frames += s.framesEncoded || 0;
                if (s.type === "outbound-rtp" && kind === "audio") packets += s.packetsSent || 0;
            });
            return [frames, packets];
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


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_the_python_peer_calls_a_browser_user_and_both_directions_flow(
    server: ParleyServer, make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    peer = run_peer(server, "call", me.username, "--media", "video", "--seconds", "300")
    dialog = me.page.get_by_role("alertdialog", name="Incoming call")
    expect(dialog).to_be_visible(timeout=30_000)
    me.page.get_by_role("button", name="Accept").click()
    expect(status(me.page)).to_have_text("Connected")
    wait_media_flowing(me, video=True)
    hang_up_once_sent(me)
    out, _ = peer.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["frames_received"]["audio"] > 50, stats
    assert stats["frames_received"]["video"] > 20, stats
    expect(status(me.page)).to_contain_text("Call ended")
