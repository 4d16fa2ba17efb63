"""Group calls through a real Janus (Debian's package, in a namespace of its own; harness/janus.py).

Parley's server is Janus's only client; the Python peers speak to Parley over /ws exactly as a
browser does, and get each other's audio and video through the SFU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.peer.group import GroupCall, GroupPeer
from backend.peer.sfu import SfuLink
from harness import aio
from harness.grouppeers import make_group
from harness.janus import JanusServer, janus_server
from harness.pythonpeers import client, online
from harness.servers import ParleyServer, make_test_certs, parley_server

KINDS = ("audio", "video")
SIZE = (160, 120)
pytestmark = pytest.mark.xdist_group("janus")


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    with janus_server(tmp_path_factory.mktemp("janus")) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, janus: JanusServer) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("sfu")
    env = {**janus.env(), "GROUP_CALLS": "sfu", "GROUP_CALL_MAX": "2"}
    with parley_server(root, make_test_certs(root / "certs"), **env) as running:
        yield running


async def until(check: Callable[[], bool], why: Callable[[], str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)


def received(link: SfuLink | None) -> dict[int, dict[str, int]]:
    return {} if link is None else {uid: dict(f) for uid, f in link.frames.items()}


async def media_from(call: GroupCall, others: set[int], more_than: int = 20) -> None:
    """Wait until audio and video frames keep coming from each of `others` (user ids)."""
    await until(
        lambda: (
            call.sfu is not None
            and all(
                received(call.sfu).get(o, {}).get(k, 0) > more_than for o in others for k in KINDS
            )
        ),
        lambda: f"from {sorted(others)}: {received(call.sfu)}",
    )


@pytest.mark.timeout(300)
def test_three_peers_in_an_sfu_call_get_each_others_audio_and_video(
    server: ParleyServer,
) -> None:
    async def scenario() -> dict[str, Any]:
        names = ["sfann", "sfbob", "sfcat"]
        room_id = await make_group(server, names)
        clients = [client(server, name) for name in names]
        peers = [GroupPeer(c, size=SIZE) for c in clients]
        tasks = [await online(c, p.handle) for c, p in zip(clients, peers, strict=True)]
        try:
            calls = [await peers[0].start(room_id, "video")]
            await asyncio.wait_for(calls[0].joined.wait(), 30)
            for peer in peers[1:]:
                call_id = await peer.live_call(room_id, 30)
                assert call_id == calls[0].id
                calls.append(await peer.join(room_id, call_id, "video"))
            ids = [p.me.id for p in peers if p.me is not None]
            for me, call in zip(ids, calls, strict=True):
                await media_from(call, set(ids) - {me})
            return {names[i]: received(c.sfu) for i, c in enumerate(calls)}
        finally:
            for peer in peers:
                await peer.close()
            for c, task in zip(clients, tasks, strict=True):
                await c.stop()
                task.cancel()

    got = aio.run(scenario())
    print(got)
    assert len(got) == 3
