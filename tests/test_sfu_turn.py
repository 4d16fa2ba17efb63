"""Janus's own TURN: Janus asks Parley for coturn credentials (its turn_rest_api) and relays.

Laid out as deploy/ does it: Janus reaches gunicorn over plain HTTP on a private address
(`BIND` on the namespace's outer address as well as loopback), presenting its API secret as the
key, and coturn shares Parley's TURN secret. Janus lives in a namespace the test makes, and coturn
listens on that namespace's veth pair (harness/janus.py), so nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest

from backend.peer.group import GroupCall, GroupPeer
from backend.turnserver import LocalTurn
from harness import aio
from harness.grouppeers import make_group
from harness.janus import JanusServer, janus_config, janus_in, namespace, settings
from harness.pythonpeers import client, online
from harness.servers import ParleyServer, make_test_certs, parley_server

pytestmark = pytest.mark.xdist_group("janus")
KINDS = ("audio", "video")


@dataclass
class Setup:
    server: ParleyServer
    janus: JanusServer
    turn: LocalTurn
    turn_rest_api: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("sfu-turn")
    with namespace() as ns:
        config = janus_config(root / "janus", ns)
        turn = LocalTurn(root / "coturn", secret=secrets.token_urlsafe(24), host=ns.outer)
        turn.start()
        try:
            env = {
                **settings(config),
                "GROUP_CALLS": "sfu",
                "TURN_URLS": ",".join(turn.urls),
                "TURN_SECRET": turn.secret,
                "PARLEY_TLS": "0",  # as behind deploy/nginx.conf: gunicorn speaks plain HTTP
                "SESSION_COOKIE_SECURE": "0",
            }
            certs = make_test_certs(root / "certs")
            with parley_server(root / "parley", certs, also_on=(ns.outer,), **env) as server:
                api = f"http://{ns.outer}:{server.port}/api/turn/janus"
                with janus_in(ns, replace(config, turn_rest_api=api), root / "janus") as janus:
                    yield Setup(server, janus, turn, api)
        finally:
            turn.stop()


def relay_candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if re.search(r"\btyp relay\b", line)]


async def until(check: Callable[[], bool], why: Callable[[], str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)


def test_janus_is_refused_credentials_for_a_wrong_key_over_the_wire(setup: Setup) -> None:
    wrong = httpx.post(setup.turn_rest_api, params={"service": "turn", "key": "guess"}, timeout=10)
    assert (wrong.status_code, wrong.json()) == (403, {"error": "wrong key"})


def test_janus_relays_through_coturn_with_credentials_parley_mints(setup: Setup) -> None:
    """Janus's descriptions carry relay candidates of coturn (so its allocations, made with the
    credentials Parley gave it, succeeded), and media flows both ways through Janus."""

    async def scenario() -> tuple[GroupCall, GroupCall]:
        names = ["stann", "stbob"]
        room_id = await make_group(setup.server, names)
        clients = [client(setup.server, name) for name in names]
        peers = [GroupPeer(c, size=(160, 120)) for c in clients]
        tasks = [await online(c, p.handle) for c, p in zip(clients, peers, strict=True)]
        try:
            ann, bob = peers
            call = await ann.start(room_id, "video")
            await asyncio.wait_for(call.joined.wait(), 30)
            assert await bob.live_call(room_id, 30) == call.id
            bob_call = await bob.join(room_id, call.id, "video")
            for mine, theirs in ((call, bob), (bob_call, ann)):
                assert theirs.me is not None
                other = theirs.me.id

                def frames(c: GroupCall = mine, o: int = other) -> dict[str, int]:
                    return dict(c.sfu.frames.get(o, {})) if c.sfu is not None else {}

                await until(
                    lambda f=frames: all(f().get(k, 0) > 20 for k in KINDS),  # type: ignore[misc]
                    lambda f=frames: f"frames {f()}",  # type: ignore[misc]
                )
            return call, bob_call
        finally:
            for peer in peers:
                await peer.close()
            for c, task in zip(clients, tasks, strict=True):
                await c.stop()
                task.cancel()

    calls = aio.run(scenario())
    outer = setup.janus.ns.outer
    for call in calls:
        link = call.sfu
        assert link is not None and link.publisher is not None and link.subscriber is not None
        for pc in (link.publisher, link.subscriber):
            described = pc.remoteDescription
            assert described is not None
            relays = relay_candidates(described.sdp)
            assert relays and all(f" {outer} " in line for line in relays), described.sdp
    log = setup.janus.tail_log(400)
    assert "Couldn't send the request" not in log and "Invalid response" not in log, log
