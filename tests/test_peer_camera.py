"""Camera on in a voice call between Python peers: renegotiation adds video, both sides see it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from backend.peer.peer import Peer, PeerCall
from harness import aio
from harness.echobot import echo_bot as echo_bot_process
from harness.pythonpeers import ECHO_PASSWORD, Presence, client, echo_id, flowing, online
from harness.servers import ParleyServer, make_test_certs, parley_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("camera")
    with parley_server(root, make_test_certs(root / "certs"), ECHO_PASSWORD=ECHO_PASSWORD) as s:
        yield s


async def says_video_on(call: PeerCall, seconds: float = 30) -> None:
    """Wait for the other side's call_media to say its camera is on."""
    deadline = time.monotonic() + seconds
    while not call.remote_media["video"]:
        assert time.monotonic() < deadline, f"no call_media video=true: {await call.stats()}"
        await asyncio.sleep(0.1)


def test_camera_on_in_a_voice_call_sends_video_the_other_side_receives(
    server: ParleyServer,
) -> None:
    async def scenario() -> None:
        a, b = client(server, "voicecam"), client(server, "voicecamee")
        await b.sign_in()
        caller, callee = Peer(a), Peer(b)
        tasks = [await online(a, caller.handle), await online(b, callee.handle)]
        call = await caller.call("voicecamee", "audio")
        await asyncio.wait_for(call.answered.wait(), 30)
        answered = next(iter(callee.calls.values()))
        await flowing(answered, ("audio",))
        assert answered.received["video"] == 0 and not answered.remote_media["video"]
        await caller.camera_on(call)
        await flowing(answered, ("audio", "video"))
        await says_video_on(answered)
        assert call.pc.connectionState == "connected"  # renegotiated, not replaced
        await caller.hang_up(call)
        for c in (a, b):
            await c.stop()
        for task in tasks:
            task.cancel()

    aio.run(scenario())


def test_the_echo_bot_sends_back_a_camera_turned_on_in_a_voice_call(
    server: ParleyServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    with echo_bot_process(server, ECHO_PASSWORD, log, 120) as bot:

        async def scenario() -> None:
            a = client(server, "echocam")
            peer = Peer(a)
            presence = Presence(peer.handle)
            task = await online(a, presence)
            await presence.until_online(await echo_id(a))
            call = await peer.call("echo", "audio")
            await asyncio.wait_for(call.answered.wait(), 30)
            await flowing(call, ("audio",))
            assert call.received["video"] == 0
            await peer.camera_on(call)
            await flowing(call, ("audio", "video"))  # our stripes, echoed
            await says_video_on(call)
            await peer.close()
            await a.stop()
            task.cancel()

        aio.run(scenario())
        assert bot.poll() is None
