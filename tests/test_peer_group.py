"""Python peers in a group's video call through a real server: a full mesh of four."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from backend.peer.group import GroupCall, GroupPeer
from harness.grouppeers import finished, join_process, make_group
from harness.pythonpeers import flowing, online
from harness.servers import ParleyServer, make_test_certs, parley_server

KINDS = ("audio", "video")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("peergroup")
    with parley_server(root, make_test_certs(root / "certs"), GROUP_CALL_MAX="4") as running:
        yield running


async def until(check: Callable[[], bool], why: str, seconds: float = 60) -> None:
    """Wait for `check` to hold; fail saying `why` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.1)


async def media_from_everyone(call: GroupCall, others: set[str]) -> None:
    """Wait for a pair with each of `others`, and for their audio and video to keep coming."""
    await until(
        lambda: {pair.peer.username for pair in call.pairs.values()} == others,
        f"pairs {[p.peer.username for p in call.pairs.values()]}, wanted {sorted(others)}",
    )
    for pair in list(call.pairs.values()):
        await flowing(pair, KINDS, seconds=60)


def test_four_peers_all_see_and_hear_each_other_a_fifth_is_refused_and_one_leaves(
    server: ParleyServer,
) -> None:
    async def scenario() -> None:
        names = ["gpann", "gpbob", "gpcat", "gpdan", "gpeve"]
        clients, room_id = await make_group(server, names)
        ann, bob = GroupPeer(clients[0]), GroupPeer(clients[1])
        tasks = [await online(clients[0], ann.handle), await online(clients[1], bob.handle)]

        # Ann starts the call; Bob finds it live in the room and joins.
        call = await ann.start(room_id, "video")
        await asyncio.wait_for(call.joined.wait(), 30)
        assert await bob.live_call(room_id, 30) == call.id
        bobs = await bob.join(room_id, call.id, "video")
        await asyncio.wait_for(bobs.joined.wait(), 30)
        # Cat and Dan join from the command line; Cat's --start joins the call already live.
        cat = await join_process(server, "gpcat", room_id, "--start", "--seconds", "600")
        dan = await join_process(server, "gpdan", room_id, "--seconds", "600")

        await media_from_everyone(call, {"gpbob", "gpcat", "gpdan"})
        await media_from_everyone(bobs, {"gpann", "gpcat", "gpdan"})

        # A fifth member is told the call is full and never gets in.
        eve = await finished(await join_process(server, "gpeve", room_id, "--seconds", "5"))
        assert (eve["exit_code"], eve["joined"], eve["end_reason"]) == (2, False, "full"), eve
        assert eve["participants"] == {}

        # Bob leaves: Ann drops her connection with him and keeps getting Cat's and Dan's media.
        await bob.leave()
        await until(lambda: "gpbob" in call.gone, f"bob still there: {list(call.pairs)}")
        assert {p.peer.username for p in call.pairs.values()} == {"gpcat", "gpdan"}
        before = {user_id: dict(pair.received) for user_id, pair in call.pairs.items()}
        await until(
            lambda: all(
                pair.received[kind] > before[user_id][kind] + 20
                for user_id, pair in call.pairs.items()
                for kind in KINDS
            ),
            f"media stopped after bob left: {before}, {[p.received for p in call.pairs.values()]}",
        )

        # Cat and Dan leave when told to; each got sound and pictures from all three others.
        for process in (cat, dan):
            process.send_signal(signal.SIGTERM)
        for me, process in (("gpcat", cat), ("gpdan", dan)):
            stats = await finished(process)
            assert stats["exit_code"] == 0 and stats["joined"], stats
            others = stats["participants"]
            assert set(others) == {"gpann", "gpbob", "gpcat", "gpdan"} - {me}, stats
            for name, pair in others.items():
                for kind in KINDS:
                    assert pair["frames_received"][kind] > 0, (me, name, kind, pair)
                    assert pair["bytes_received"][kind] > 0, (me, name, kind, pair)
            assert others["gpbob"]["end_reason"] == "left", others["gpbob"]
            assert others["gpann"]["connection_state"] == "connected", others["gpann"]
            assert stats["call_id"] == call.id

        await ann.close()
        for c in clients[:2]:
            await c.stop()
        for task in tasks:
            task.cancel()

    asyncio.run(scenario())
