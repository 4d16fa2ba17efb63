"""Python peers (aiortc) through a real server: peer to peer, and the echo-test bot."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from backend.peer.calls import Peer, PeerCall
from backend.peer.client import ParleyClient
from tests.servers import ROOT, ParleyServer, make_test_certs, parley_server

ECHO_PASSWORD = "echo-bot-test-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("peer")
    with parley_server(
        root, make_test_certs(root / "certs"), ECHO_PASSWORD=ECHO_PASSWORD, CALL_GRACE_PERIOD="20"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def echo_bot(
    server: ParleyServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    env = dict(
        os.environ,
        PARLEY_URL=server.url,
        PARLEY_CA_FILE=str(server.certs / "ca.crt"),
        ECHO_PASSWORD=ECHO_PASSWORD,
        ECHO_MAX_SECONDS="8",
    )
    with log.open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "backend.peer", "echo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    yield bot
    bot.terminate()
    bot.wait(10)


def client(server: ParleyServer, name: str) -> ParleyClient:
    return ParleyClient(server.url, name, "correct horse", str(server.certs / "ca.crt"))


async def online(c: ParleyClient, peer: Peer) -> asyncio.Task[None]:
    await c.sign_in()
    task = asyncio.ensure_future(c.run(peer.handle))
    await asyncio.wait_for(c.connected.wait(), 10)
    return task


async def flowing(call: PeerCall, kinds: tuple[str, ...], seconds: float = 15) -> dict[str, int]:
    """Wait until frames of every kind keep arriving; return the counts."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(call.received[k] > 20 for k in kinds):
            return dict(call.received)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no media: {await call.stats()}")


def test_one_python_peer_calls_another_and_media_flows_both_ways(server: ParleyServer) -> None:
    async def scenario() -> None:
        a, b = client(server, "pycaller"), client(server, "pycallee")
        await b.sign_in()  # exists before the caller opens the room
        callee = Peer(b)
        caller = Peer(a)
        tasks = [await online(a, caller), await online(b, callee)]
        call = await caller.call("pycallee", "video")
        await asyncio.wait_for(call.answered.wait(), 15)
        await flowing(call, ("audio", "video"))
        answered = next(iter(callee.calls.values()))
        await flowing(answered, ("audio", "video"))
        await caller.hang_up(call)
        await asyncio.wait_for(answered.ended.wait(), 10)
        assert answered.end_reason == "hangup"
        assert call.pc.connectionState == "closed" and answered.pc.connectionState == "closed"
        for c in (a, b):
            await c.stop()
        for task in tasks:
            task.cancel()

    asyncio.run(scenario())


def test_echo_bot_answers_plays_back_and_hangs_up_with_a_note(
    server: ParleyServer, echo_bot: subprocess.Popen[bytes]
) -> None:
    async def scenario() -> None:
        a = client(server, "echofan")
        loudest = [0]

        async def listen(call: PeerCall, track: MediaStreamTrack) -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    call.received[track.kind] += 1
                    if track.kind == "audio" and time.monotonic() - call.started > 4:
                        pcm = bytes(frame.planes[0])[
                            : frame.samples * 2 * len(frame.layout.channels)
                        ]
                        samples = memoryview(pcm).cast("h")
                        loudest[0] = max(loudest[0], max(abs(v) for v in samples))

        peer = Peer(a, on_remote_track=listen)
        task = await online(a, peer)
        # The bot may still be signing in; new users get the echo room once it has.
        deadline = time.monotonic() + 20
        while True:
            rooms = (await a.api("GET", "/api/rooms"))["rooms"]
            if [r["peer"]["username"] for r in rooms] == ["echo"] or time.monotonic() > deadline:
                break
            await a.sign_in(register=False)
            await asyncio.sleep(0.5)
        assert [r["peer"]["username"] for r in rooms] == ["echo"]
        call = await peer.call("echo", "video")
        await asyncio.wait_for(call.answered.wait(), 15)
        await flowing(call, ("audio", "video"))
        # After the 2 s delay line our own tone comes back, not silence.
        await asyncio.sleep(3.5)
        assert loudest[0] > 1000, loudest
        await asyncio.wait_for(call.ended.wait(), 15)  # ECHO_MAX_SECONDS=8
        texts = [
            m["text"]
            for m in (await a.api("GET", f"/api/rooms/{call.room_id}/messages"))["messages"]
        ]
        assert "Echo test calls end after 8 seconds. Call again any time." in texts
        await a.stop()
        task.cancel()

    asyncio.run(scenario())


def test_echo_bot_reconnects_after_a_server_restart(
    server: ParleyServer, echo_bot: subprocess.Popen[bytes]
) -> None:
    server.restart()

    async def scenario() -> None:
        a = client(server, "afterrestart")
        peer = Peer(a)
        task = await online(a, peer)
        deadline = time.monotonic() + 30
        call = None
        while time.monotonic() < deadline:
            call = await peer.call("echo", "audio")
            try:
                await asyncio.wait_for(call.answered.wait(), 5)
                break
            except TimeoutError:
                await peer.hang_up(call)
        assert call is not None and call.answered.is_set()
        await flowing(call, ("audio",))
        await peer.close()
        await a.stop()
        task.cancel()

    asyncio.run(scenario())
    assert echo_bot.poll() is None


def test_echo_bot_serves_several_calls_at_once(
    server: ParleyServer, echo_bot: subprocess.Popen[bytes]
) -> None:
    async def scenario() -> None:
        clients = [client(server, f"together{n}") for n in range(3)]
        peers = [Peer(c) for c in clients]
        tasks = [await online(c, p) for c, p in zip(clients, peers, strict=True)]
        calls = await asyncio.gather(*(p.call("echo", "audio") for p in peers))
        await asyncio.gather(*(asyncio.wait_for(c.answered.wait(), 20) for c in calls))
        for call in calls:
            await flowing(call, ("audio",))
        for peer, c in zip(peers, clients, strict=True):
            await peer.close()
            await c.stop()
        for task in tasks:
            task.cancel()

    asyncio.run(scenario())
