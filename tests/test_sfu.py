"""Group calls through a real Janus (Debian's package, in a namespace of its own; harness/janus.py).

Parley's server is Janus's only client. Sockets and Python peers speak to Parley over /ws exactly
as a browser does; the tests look at Janus itself (with its secrets, which only they and Parley's
server hold) to check what Parley made there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from httpcore._sync.connection import HTTPConnection

from backend.peer.group import GroupCall, GroupPeer
from backend.peer.sfu import SfuLink
from backend.sfu.janus import Janus, plugin_data
from backend.sfu.videoroom import PLUGIN
from harness import aio
from harness.grouppeers import finished, join_process, make_group
from harness.janus import JanusServer, janus_server
from harness.pythonpeers import client, online
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import FAKE_SDP, Person, call_id, username

KINDS = ("audio", "video")
SIZE = (160, 120)
OFFER = {"type": "offer", "sdp": FAKE_SDP}
# One Janus and its namespace per module, in the browsers' lane: this module's six aiortc peers
# and e2e/test_sfu.py's six participants, run at once on two cores, starved each other (both
# calls lost media here), so they take turns.
pytestmark = pytest.mark.xdist_group("browsers")


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    with janus_server(tmp_path_factory.mktemp("janus")) as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, janus: JanusServer) -> Iterator[ParleyServer]:
    """GROUP_CALLS=auto, GROUP_CALL_MAX=2: a group of two calls in a mesh, bigger ones via Janus."""
    root = tmp_path_factory.mktemp("sfu")
    env = {**janus.env(), "GROUP_CALL_MAX": "2", "SFU_CALL_MAX": "6"}  # JANUS_TIMEOUT: 10 s
    with parley_server(root, make_test_certs(root / "certs"), **env) as running:
        yield running


def rooms(janus: JanusServer) -> list[dict[str, Any]]:
    """Janus's rooms, private ones included (the admin key shows them), as Janus lists them."""
    api = Janus(janus.url, janus.config.api_secret, timeout=30)  # a loaded machine: Janus is slow
    session = api.session()
    try:
        handle = session.attach(PLUGIN, lambda event: None)
        answer = session.message(handle, {"request": "list", "admin_key": janus.config.admin_key})
        found = plugin_data(answer).get("list") or []
        out = []
        for room in found:
            listed = session.message(handle, {"request": "listparticipants", "room": room["room"]})
            out.append(
                {**room, "feeds": sorted(p["id"] for p in plugin_data(listed)["participants"])}
            )
        return out
    finally:
        session.destroy()
        api.close()


def group(server: ParleyServer, size: int, made: list[Person]) -> tuple[list[Person], int]:
    people = [Person(server, username("sfu")) for _ in range(size)]
    made.extend(people)
    answer = people[0].http.post(
        "/api/groups", json={"name": "Big", "usernames": [p.username for p in people[1:]]}
    )
    assert answer.status_code == 201, answer.text
    return people, int(answer.json()["id"])


@pytest.fixture
def people(server: ParleyServer) -> Iterator[Callable[[int], tuple[list[Person], int]]]:
    made: list[Person] = []
    yield lambda size: group(server, size, made)
    for someone in made:
        someone.close()


def test_a_group_bigger_than_the_mesh_goes_through_janus_and_only_participants_signal_to_it(
    people: Callable[[int], tuple[list[Person], int]], server: ParleyServer, janus: JanusServer
) -> None:
    (a, b), pair = people(2)
    sa = a.connect()
    sa.send({"type": "group_call_start", "call_id": call_id(), "room_id": pair, "media": "video"})
    mesh = sa.expect("group_call_joined")
    assert mesh["topology"] == "mesh"
    sa.send({"type": "sfu_description", "call_id": mesh["call_id"], "pc": "publish",
             "description": OFFER})  # fmt: skip
    assert sa.expect("error")["reason"] == "forbidden"

    (alice, bob, carol), big = people(3)
    outsider = Person(server, username("out"))
    try:
        s_alice, s_bob, s_out = alice.connect(), bob.connect(), outsider.connect()
        cid = call_id()
        s_alice.send({"type": "group_call_start", "call_id": cid, "room_id": big, "media": "video"})
        joined = s_alice.expect("group_call_joined")
        assert joined["topology"] == "sfu"
        publish = {"type": "sfu_description", "call_id": cid, "pc": "publish", "description": OFFER}
        # A member who has not joined, and someone outside the group, are refused.
        s_bob.send(publish)
        assert (
            s_bob.expect("error", where=lambda f: f.get("ref_type") == "sfu_description")["reason"]
            == "not_found"
        )
        s_out.send(publish)
        assert s_out.expect("error")["reason"] == "not_found"
        # The receiving connection takes answers only.
        s_alice.send({**publish, "pc": "subscribe"})
        assert s_alice.expect("error")["reason"] == "bad_message"
        # The room exists on Janus, private, with nobody in it yet.
        deadline = time.monotonic() + 20
        while not (found := rooms(janus)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(found) == 1 and found[0]["feeds"] == [], found
        s_alice.send({"type": "group_call_leave", "call_id": cid})
        s_alice.expect("group_call_state", where=lambda f: f["state"] == "ended")
        # The call is over: its room is gone.
        deadline = time.monotonic() + 20
        while rooms(janus) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rooms(janus) == []
    finally:
        outsider.close()


def received(link: SfuLink | None) -> dict[int, dict[str, int]]:
    return {} if link is None else {uid: dict(f) for uid, f in link.frames.items()}


async def until(check: Callable[[], bool], why: Callable[[], str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)


async def media_from(call: GroupCall, others: set[int], more_than: int = 20) -> None:
    """Wait until each of `others` (user ids) has sent this peer more than `more_than` frames
    of audio and of video since this was called."""
    counted = [call.sfu, received(call.sfu)]

    def got(o: int, k: str) -> int:
        if call.sfu is not counted[0]:  # the call started over on new connections: count anew
            counted[:] = [call.sfu, {}]
        start: dict[int, dict[str, int]] = counted[1]  # type: ignore[assignment]
        return received(call.sfu).get(o, {}).get(k, 0) - start.get(o, {}).get(k, 0)

    await until(
        lambda: all(got(o, k) > more_than for o in others for k in KINDS),
        lambda: f"from {sorted(others)}: {received(call.sfu)}",
    )


def feeds_now(janus: JanusServer) -> list[int]:
    found = rooms(janus)
    return found[0]["feeds"] if found else []


@pytest.mark.timeout(600)  # six aiortc peers on two shared cores
def test_six_in_an_sfu_call_get_each_others_media_one_leaves_one_is_removed_and_one_comes_late(
    server: ParleyServer, janus: JanusServer
) -> None:
    names = ["sfann", "sfbob", "sfcat", "sfdan", "sfeve", "sffay"]

    async def scenario() -> dict[str, Any]:
        room_id = await make_group(server, names)
        clients = [client(server, name) for name in names[:2]]
        peers = [GroupPeer(c, size=SIZE) for c in clients]
        tasks = [await online(c, p.handle) for c, p in zip(clients, peers, strict=True)]
        ann, bob = peers
        options = ("--seconds", "600", "--size", "x".join(map(str, SIZE)))
        processes: dict[str, asyncio.subprocess.Process] = {}
        try:
            call = await ann.start(room_id, "video")
            await asyncio.wait_for(call.joined.wait(), 30)
            bob_id = await bob.live_call(room_id, 30)
            assert bob_id == call.id
            bob_call = await bob.join(room_id, call.id, "video")
            for name in names[2:5]:  # cat, dan, eve from the command line
                processes[name] = await join_process(server, name, room_id, *options)
            me = {p.me.id: p.me.username for p in peers if p.me is not None}
            await until(lambda: len(call.users) >= 5, lambda: f"in the call: {call.users}")
            ids = {u.id: u.username for u in call.users.values()}
            everyone = set(ids) | set(me)
            ann_id, bob_id_ = (p.me.id for p in peers if p.me is not None)
            await media_from(call, everyone - {ann_id})
            await media_from(bob_call, everyone - {bob_id_})
            await until(lambda: len(feeds_now(janus)) == 5, lambda: f"feeds {feeds_now(janus)}")

            # Fay comes late: everyone gets her, she gets everyone.
            processes["sffay"] = await join_process(server, "sffay", room_id, *options)
            await until(lambda: len(call.users) >= 6, lambda: f"in the call: {call.users}")
            fay = next(uid for uid, u in call.users.items() if u.username == "sffay")
            await media_from(call, {fay})
            await media_from(bob_call, {fay})

            # Eve leaves: her feed goes from Janus, the others keep getting each other.
            processes["sfeve"].send_signal(signal.SIGTERM)
            eve_stats = await finished(processes.pop("sfeve"))
            eve = next(uid for uid, u in call.users.items() if u.username == "sfeve")
            await until(lambda: eve not in feeds_now(janus), lambda: f"{feeds_now(janus)}")
            await media_from(call, everyone - {ann_id, eve} | {fay})

            # Dan leaves the group (from another device): Janus drops him from the call's room
            # too, and his process hears "removed".
            dan = next(uid for uid, u in call.users.items() if u.username == "sfdan")
            elsewhere = client(server, "sfdan")
            await elsewhere.sign_in(register=False)
            await elsewhere.api("DELETE", f"/api/rooms/{room_id}/members/me")
            await elsewhere.stop()
            await until(lambda: dan not in feeds_now(janus), lambda: f"{feeds_now(janus)}")
            dan_stats = await finished(processes.pop("sfdan"))
            await media_from(bob_call, {ann_id, fay})
            return {"eve": eve_stats, "dan": dan_stats, "ids": ids, "users": call.users}
        finally:
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
            for name, process in processes.items():
                stats = await finished(process)
                assert stats["joined"], (name, stats)
            for peer in peers:
                await peer.close()
            for c, task in zip(clients, tasks, strict=True):
                await c.stop()
                task.cancel()

    got = aio.run(scenario())
    # Eve, while she was in, got sound and pictures from the four who were there before Fay and
    # from Fay; Dan heard he was removed.
    eve = got["eve"]
    assert eve["exit_code"] == 0 and eve["joined"], eve
    for name in ("sfann", "sfbob", "sfcat", "sfdan", "sffay"):
        for kind in KINDS:
            assert eve["participants"][name]["frames_received"][kind] > 0, (
                name,
                kind,
                json.dumps(eve["participants"], indent=1),
                eve["log"],
            )
            assert eve["participants"][name]["bytes_received"][kind] > 0, (name, kind, eve)
    assert got["dan"]["end_reason"] == "removed", got["dan"]


def call_messages(person: Person, room: int) -> list[dict[str, Any]]:
    return [m for m in person.messages(room) if m.get("kind") == "call"]


def test_janus_restarting_mid_call_ends_it_with_a_reason_and_the_next_call_works(
    people: Callable[[int], tuple[list[Person], int]], janus: JanusServer
) -> None:
    (alice, bob, carol), room = people(3)
    s_alice, s_bob = alice.connect(), bob.connect()
    cid = call_id()
    s_alice.send({"type": "group_call_start", "call_id": cid, "room_id": room, "media": "audio"})
    assert s_alice.expect("group_call_joined")["topology"] == "sfu"
    s_bob.expect("group_call_ring")
    s_bob.send({"type": "group_call_join", "call_id": cid})
    s_bob.expect("group_call_joined")
    deadline = time.monotonic() + 20
    while not rooms(janus) and time.monotonic() < deadline:  # the room is made, then Janus goes
        time.sleep(0.2)
    janus.restart()
    # Both hear why the call ended; the room records it as failed.
    for sock in (s_alice, s_bob):
        assert sock.expect("call_end", timeout=30)["reason"] == "sfu_restarted"
        sock.expect("group_call_state", where=lambda f: f["state"] == "ended")
    records = call_messages(carol, room)
    assert [m["call"]["outcome"] for m in records] == ["failed"], records
    # A new call gets a new room on the new Janus.
    again = call_id()
    s_bob.send({"type": "group_call_start", "call_id": again, "room_id": room, "media": "audio"})
    assert s_bob.expect("group_call_joined")["call_id"] == again
    deadline = time.monotonic() + 20
    while not rooms(janus) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(rooms(janus)) == 1
    s_bob.send({"type": "group_call_leave", "call_id": again})
    s_bob.expect("group_call_state", where=lambda f: f["state"] == "ended")


def test_a_janus_that_does_not_answer_ends_the_call_in_its_time_limit_and_nothing_else_waits(
    people: Callable[[int], tuple[list[Person], int]], janus: JanusServer
) -> None:
    (alice, bob, carol), room = people(3)
    s_alice = alice.connect()
    assert janus.process is not None
    janus.process.send_signal(signal.SIGSTOP)  # up, connected, and silent
    try:
        cid = call_id()
        started = time.monotonic()
        s_alice.send(
            {"type": "group_call_start", "call_id": cid, "room_id": room, "media": "video"}
        )
        assert s_alice.expect("group_call_joined")["topology"] == "sfu"
        # Meanwhile the server carries on: a chat message is stored and acknowledged.
        s_alice.send({"type": "chat_message", "room_id": room, "client_id": "c1", "text": "hi"})
        s_alice.expect("chat_ack", timeout=5)
        end = s_alice.expect("call_end", timeout=60)
        assert end["reason"] == "sfu_unavailable"
        assert time.monotonic() - started < 45  # JANUS_TIMEOUT is 10 s
    finally:
        janus.process.send_signal(signal.SIGCONT)


def sockets_to(janus: JanusServer) -> list[str]:
    """This process's TCP connections to Janus's API that are still open, by socket inode."""
    url = httpx.URL(janus.url)
    address = socket.inet_aton(str(url.host))[::-1].hex().upper()  # /proc/net/tcp's byte order
    remote = f"{address}:{url.port:04X}"
    with open("/proc/self/net/tcp") as table:
        to_janus = {row.split()[9] for row in list(table)[1:] if row.split()[2] == remote}
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            mine.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed meanwhile (the listing's own fd)
            continue
    return sorted(inode for inode in to_janus if f"socket:[{inode}]" in mine)


def test_a_session_destroyed_while_its_poll_connects_leaves_no_connection_to_janus_open(
    janus: JanusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI: a connection to Janus left open, found unclosed by the garbage collector in a later
    # test. The session's poll was still connecting when destroy() closed its client, and
    # httpcore's pool dropped that connection without closing it. The window is widened here:
    # the poll's connect takes half a second more, and destroy() comes meanwhile.
    connect = HTTPConnection._connect

    def slow_for_the_poll(self: HTTPConnection, request: Any) -> Any:
        if threading.current_thread().name.startswith("janus-"):
            time.sleep(0.5)
        return connect(self, request)

    monkeypatch.setattr(HTTPConnection, "_connect", slow_for_the_poll)
    api = Janus(janus.url, janus.config.api_secret, timeout=30)
    session = api.session()
    session.destroy()
    api.close()
    session._poller.join(60)  # the poll has connected, been answered, and ended
    assert not session._poller.is_alive()
    assert sockets_to(janus) == []
