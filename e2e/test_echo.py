"""Echo test and the Python peer, with browsers on the other end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from harness.calls import (
    call_echo_test,
    hang_up_once_sent,
    run_peer,
    status,
    wait_media_flowing,
)
from harness.people import User
from harness.servers import ParleyServer


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_calling_echo_test_brings_your_own_video_and_audio_back(
    echo_bot: subprocess.Popen[bytes], make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    call_echo_test(me)
    wait_media_flowing(me, video=True, seconds=40)  # audio comes back after the 2 s delay
    me.page.get_by_role("button", name="End call").click()
    expect(me.page.get_by_role("log", name="Messages").get_by_text("Video call ·")).to_be_visible()
    assert echo_bot.poll() is None


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
