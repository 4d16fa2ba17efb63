"""Python peers in a group's video call through a real server: a full mesh of four."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.peer.group import GroupCall, GroupPeer
from backend.signaling.protocol import CallDescriptionSend, SessionDescription
from harness import aio
from harness.grouppeers import finished, join_process, make_group, stats_of
from harness.pythonpeers import client, flowing, online
from harness.servers import ParleyServer, make_test_certs, parley_server

KINDS = ("audio", "video")
# Small pictures: twelve pairs' encoders and decoders share the test machine's two cores.
SIZE = (160, 120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("peergroup")
    with parley_server(root, make_test_certs(root / "certs"), GROUP_CALL_MAX="4") as running:
        yield running


async def until(check: Callable[[], bool], why: Callable[[], str], seconds: float = 180) -> None:
    """Wait for `check` to hold; fail saying `why()` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)


def pairs_now(call: GroupCall) -> list[tuple[str, dict[str, int], str]]:
    """Who each pair is with, what it received, its connection state."""
    return [(p.peer.username, p.received, p.pc.connectionState) for p in call.pairs.values()]


async def media_from_everyone(call: GroupCall, others: set[str]) -> None:
    """Wait for a pair with each of `others`, and for their audio and video to keep coming."""
    await until(
        lambda: {pair.peer.username for pair in call.pairs.values()} == others,
        lambda: f"pairs {pairs_now(call)}, not {sorted(others)}",
    )
    for pair in list(call.pairs.values()):
        await flowing(pair, KINDS, seconds=120)


@pytest.mark.timeout(600)  # five peers' media on a loaded 2-core machine: 35 s to 3 minutes
def test_four_peers_all_see_and_hear_each_other_a_fifth_is_refused_and_one_leaves(
    server: ParleyServer,
) -> None:
    async def scenario() -> None:
        names = ["gpann", "gpbob", "gpcat", "gpdan", "gpeve"]
        room_id = await make_group(server, names)
        c = client(server, "gpann")
        ann = GroupPeer(c, size=SIZE)
        task = await online(c, ann.handle)

        # Ann starts the call; Bob, Cat and Dan join from the command line (Bob and Dan find the
        # call live in the room; Cat's --start joins it rather than starting another).
        call = await ann.start(room_id, "video")
        await asyncio.wait_for(call.joined.wait(), 30)
        options = ("--seconds", "600", "--size", "x".join(map(str, SIZE)))
        peers = {
            "gpbob": await join_process(server, "gpbob", room_id, *options),
            "gpcat": await join_process(server, "gpcat", room_id, "--start", *options),
            "gpdan": await join_process(server, "gpdan", room_id, *options),
        }
        ended: dict[str, dict[str, Any]] = {}
        try:
            await media_from_everyone(call, {"gpbob", "gpcat", "gpdan"})

            # A fifth member is told the call is full and never gets in.
            eve = await finished(await join_process(server, "gpeve", room_id, "--seconds", "5"))
            assert (eve["exit_code"], eve["joined"], eve["end_reason"]) == (2, False, "full"), eve
            assert eve["participants"] == {}

            # Bob leaves: Ann drops her connection with him and keeps getting the others' media.
            peers["gpbob"].send_signal(signal.SIGTERM)
            ended["gpbob"] = await finished(peers["gpbob"])
            await until(lambda: "gpbob" in call.gone, lambda: f"bob still in: {pairs_now(call)}")
            assert {p.peer.username for p in call.pairs.values()} == {"gpcat", "gpdan"}
            before = {user_id: dict(pair.received) for user_id, pair in call.pairs.items()}
            await until(
                lambda: all(
                    pair.received[kind] > before[user_id][kind] + 20
                    for user_id, pair in call.pairs.items()
                    for kind in KINDS
                ),
                lambda: f"media stopped after bob left: {before}, {pairs_now(call)}",
            )
        finally:
            # Cat and Dan leave when told to (also when the test failed: never leave them running).
            for name, process in peers.items():
                if name not in ended:
                    process.send_signal(signal.SIGTERM)
                    out, err = await asyncio.wait_for(process.communicate(), 90)
                    print(err.decode()[-4000:])  # shown when the test fails
                    if out.strip():  # none when it was still starting
                        ended[name] = stats_of(out, err, process.returncode)

        # Each of them got sound and pictures from all three others while they were in.
        assert set(ended) == set(peers)
        for me, stats in ended.items():
            assert stats["exit_code"] == 0 and stats["joined"], stats
            assert stats["call_id"] == call.id
            others = stats["participants"]
            assert set(others) == {"gpann", "gpbob", "gpcat", "gpdan"} - {me}, stats
            for name, pair in others.items():
                for kind in KINDS:
                    assert pair["frames_received"][kind] > 0, (me, name, kind, pair)
                    assert pair["bytes_received"][kind] > 0, (me, name, kind, pair)
        for me in ("gpcat", "gpdan"):
            assert ended[me]["participants"]["gpbob"]["end_reason"] == "left", ended[me]
            assert ended[me]["participants"]["gpann"]["connection_state"] == "connected"

        await ann.close()
        await c.stop()
        task.cancel()

    aio.run(scenario())


def test_a_peer_waiting_for_a_call_that_never_rings_stops_at_sigterm_and_says_so(
    server: ParleyServer,
) -> None:
    async def scenario() -> dict[str, Any]:
        names = ["waits1", "waits2"]
        room_id = await make_group(server, names)
        process = await join_process(server, names[0], room_id, "--wait", "600")
        # Signed in and waiting: its socket is up (the log says so) before we stop it.
        assert process.stderr is not None
        while b"waiting up to" not in await asyncio.wait_for(process.stderr.readline(), 60):
            pass
        process.send_signal(signal.SIGTERM)
        return await finished(process, 30)

    stats = aio.run(scenario())
    assert stats["joined"] is False and stats["end_reason"] == "stopped", stats
    assert stats["exit_code"] == 1, stats


@pytest.mark.timeout(300)
def test_an_ice_restart_offer_is_met_with_an_offer_from_a_new_connection(
    server: ParleyServer,
) -> None:
    """aiortc cannot restart ICE: a peer offered new ICE credentials (a browser whose path went
    down) offers a new connection instead, which the other side takes, and media flows again."""

    async def scenario() -> None:
        names = ["irann", "irbob"]
        room_id = await make_group(server, names)
        clients = [client(server, name) for name in names]
        ann, bob = (GroupPeer(c, size=SIZE) for c in clients)
        tasks = [await online(c, peer.handle) for c, peer in zip(clients, (ann, bob), strict=True)]
        try:
            ann_call = await ann.start(room_id, "video")
            await asyncio.wait_for(ann_call.joined.wait(), 30)
            bob_call = await bob.join(room_id, ann_call.id, "video")
            await asyncio.wait_for(bob_call.joined.wait(), 30)
            await media_from_everyone(ann_call, {"irbob"})
            await media_from_everyone(bob_call, {"irann"})
            (ann_pair,) = ann_call.pairs.values()
            (bob_pair,) = bob_call.pairs.values()
            old, bob_old = ann_pair.pc, bob_pair.pc
            received = dict(ann_pair.received)

            # Bob offers Ann new ICE credentials on the connection they have, as a browser
            # restarting ICE does.
            sdp = bob_pair.pc.localDescription.sdp
            restart = re.sub(r"(?m)^a=ice-ufrag:\S+", "a=ice-ufrag:rstr", sdp)
            restart = re.sub(r"(?m)^a=ice-pwd:\S+", "a=ice-pwd:" + "r" * 24, restart)
            assert restart != sdp
            offer = SessionDescription(type="offer", sdp=restart)
            await clients[1].send(
                CallDescriptionSend(
                    type="call_description",
                    call_id=bob_call.id,
                    to=bob_pair.peer.id,  # Ann
                    description=offer,
                )
            )

            # Ann answers it from a new connection, which Bob takes in place of his: both
            # connections are new, and Ann's media from Bob flows again on hers.
            await until(
                lambda: ann_pair.pc is not old and ann_pair.pc.connectionState == "connected",
                lambda: f"ann's pair: {pairs_now(ann_call)}",
            )
            await until(
                lambda: all(ann_pair.received[k] > received[k] + 20 for k in KINDS),
                lambda: f"no media on the new connection: {received}, {pairs_now(ann_call)}",
            )
            await until(
                lambda: bob_pair.pc is not bob_old and bob_pair.pc.connectionState == "connected",
                lambda: f"bob's pair: {pairs_now(bob_call)}",
            )
        finally:
            for peer in (ann, bob):
                await peer.close()
            for c, task in zip(clients, tasks, strict=True):
                await c.stop()
                task.cancel()

    aio.run(scenario())
