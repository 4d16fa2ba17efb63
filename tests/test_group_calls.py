"""Group calls over the signalling socket of a real server: a mesh of up to GROUP_CALL_MAX."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from backend.signaling.hub import Hub
from backend.signaling.protocol import parse
from backend.signaling.registry import CallRegistry
from harness.cluster import Cluster
from harness.fakes import FakeSocket, HandScheduler, MemoryStore
from harness.servers import ParleyServer
from harness.wsclient import FAKE_SDP, Person, Sock, call_id, offer, username

Frame = dict[str, Any]
OFFER = {"type": "offer", "sdp": FAKE_SDP}


def group_of(person: Callable[[str], Person], size: int) -> tuple[list[Person], int]:
    """Make `size` people, the first of whom creates a group of all of them; return the room id."""
    people = [person(name) for name in ("alice", "bob", "carol", "dave", "erin")[:size]]
    made = people[0].http.post(
        "/api/groups", json={"name": "Trip", "usernames": [p.username for p in people[1:]]}
    )
    assert made.status_code == 201, made.text
    return people, int(made.json()["id"])


def start(sock: Sock, room: int, cid: str, media: str = "video") -> Frame:
    """Start a group call in `room`; return the `group_call_joined` the starter gets."""
    sock.send({"type": "group_call_start", "call_id": cid, "room_id": room, "media": media})
    return sock.expect("group_call_joined")


def join(sock: Sock, cid: str) -> Frame:
    sock.send({"type": "group_call_join", "call_id": cid})
    return sock.expect("group_call_joined")


def state(sock: Sock, cid: str, size: int | None = None, timeout: float = 10) -> Frame:
    """Wait for a `group_call_state` of the call (with `size` participants, if given)."""
    return sock.expect(
        "group_call_state",
        timeout=timeout,
        where=lambda f: f["call_id"] == cid and (size is None or len(f["participants"]) == size),
    )


def ids(users: list[Frame]) -> list[int]:
    return [user["id"] for user in users]


def description(cid: str, to: Person | None) -> Frame:
    frame: Frame = {"type": "call_description", "call_id": cid, "description": OFFER}
    return frame if to is None else {**frame, "to": to.id}


def candidate(cid: str, to: Person) -> Frame:
    return {"type": "ice_candidate", "call_id": cid, "candidate": None, "to": to.id}


def in_call(socks: list[Sock], room: int) -> str:
    """Start a call on the first socket and join it on the others, in order; return its id."""
    cid = call_id()
    start(socks[0], room, cid)
    for n, sock in enumerate(socks[1:], start=2):
        join(sock, cid)
        for other in socks[:n]:
            state(other, cid, n)
    return cid


def test_a_group_call_rings_every_other_member_and_each_signal_reaches_only_its_addressee(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol, dave), room = group_of(person, 4)
    a, b, b_phone, c, d = (
        alice.connect(),
        bob.connect(),
        bob.connect(),
        carol.connect(),
        dave.connect(),
    )
    cid = call_id()
    assert start(a, room, cid)["participants"] == []
    me = {"id": alice.id, "username": alice.username}
    for sock in (b, b_phone, c, d):
        ring = sock.expect("group_call_ring")
        assert ring == {"type": "group_call_ring", "call_id": cid, "room_id": room, "from": me,
                        "media": "video", "participants": [me]}  # fmt: skip
    for sock in (a, b, c, d):
        ringing = state(sock, cid)
        assert (ringing["state"], ringing["started_by"], ringing["participants"]) == (
            "ringing", me, [me]
        )  # fmt: skip
    a.quiet("group_call_ring")  # the starter's own devices do not ring

    assert ids(join(b, cid)["participants"]) == [alice.id]
    assert b_phone.expect("call_answered_elsewhere")["call_id"] == cid
    for sock in (a, b, c, d):
        assert state(sock, cid, 2)["state"] == "active"
    assert ids(join(c, cid)["participants"]) == [alice.id, bob.id]  # the newcomer offers to both
    for sock in (a, b, d):
        assert ids(state(sock, cid, 3)["participants"]) == [alice.id, bob.id, carol.id]

    c.send({**description(cid, alice), "from": {"id": dave.id, "username": "forged"}})
    got = a.expect("call_description")
    assert got["from"] == {"id": carol.id, "username": carol.username}
    assert got["description"] == OFFER
    c.send(candidate(cid, bob))
    assert b.expect("ice_candidate")["from"]["id"] == carol.id
    a.quiet("ice_candidate")
    b.quiet("call_description")
    for sock in (b_phone, d):
        sock.quiet("call_description")
        sock.quiet("ice_candidate")

    # Media state without `to` goes to every other participant; descriptions must name one.
    c.send({"type": "call_media", "call_id": cid, "audio": False, "video": True})
    for sock in (a, b):
        assert sock.expect("call_media")["from"]["id"] == carol.id
    c.send(description(cid, None))
    assert c.expect("error")["reason"] == "bad_message"
    for to in (dave, carol):  # a member not in the call, and yourself
        c.send(candidate(cid, to))
        refused = c.expect("error")
        assert (refused["reason"], refused["call_id"]) == ("not_found", cid)
    d.quiet("ice_candidate")


def test_a_stranger_can_neither_start_join_signal_nor_hear_a_group_call(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, _carol), room = group_of(person, 3)
    mallory = person("mallory")
    alice.open_room(mallory)  # a direct room with a member is no way into the group
    a, b, m = alice.connect(), bob.connect(), mallory.connect()
    cid = in_call([a, b], room)
    assert m.welcome["group_calls"] == []
    refused = [
        {"type": "group_call_start", "call_id": call_id(), "room_id": room, "media": "audio"},
        {"type": "group_call_join", "call_id": cid},
        {"type": "group_call_leave", "call_id": cid},
        {"type": "call_resume", "call_id": cid},
        {"type": "call_end", "call_id": cid},
        candidate(cid, alice),
        description(cid, bob),
        {"type": "call_media", "call_id": cid, "audio": True, "video": True},
    ]
    for frame in refused:
        m.send(frame)
        error = m.expect("error")
        assert (error["reason"], error["ref_type"]) == ("not_found", frame["type"])
    a.quiet("ice_candidate")
    b.quiet("call_description")
    a.quiet("call_media")
    m2 = mallory.connect()
    assert m2.welcome["group_calls"] == []
    a.send(candidate(cid, bob))
    b.expect("ice_candidate")
    b.send({"type": "group_call_leave", "call_id": cid})
    assert a.expect("call_end")["reason"] == "hangup"
    for sock in (m, m2):
        for kind in ("group_call_ring", "group_call_state", "ice_candidate", "chat_message"):
            assert kind not in [f["type"] for f in sock.seen]


def test_the_fifth_is_told_the_call_is_full_until_someone_leaves(
    person: Callable[[str], Person],
) -> None:
    people, room = group_of(person, 5)
    socks = [p.connect() for p in people]
    cid = in_call(socks[:4], room)
    socks[4].send({"type": "group_call_join", "call_id": cid})
    assert socks[4].expect("error") == {"type": "error", "reason": "full",
                                        "message": "this call is full",
                                        "ref_type": "group_call_join", "call_id": cid}  # fmt: skip
    socks[3].send({"type": "group_call_leave", "call_id": cid})
    assert ids(state(socks[0], cid, 3)["participants"]) == [p.id for p in people[:3]]
    assert ids(join(socks[4], cid)["participants"]) == [p.id for p in people[:3]]


def test_the_call_ends_when_fewer_than_two_remain_and_its_record_names_who_joined(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol, dave), room = group_of(person, 4)
    a, b, c, d = (p.connect() for p in (alice, bob, carol, dave))
    cid = in_call([a, b, c], room)
    c.send({"type": "group_call_leave", "call_id": cid})
    assert ids(state(a, cid, 2)["participants"]) == [alice.id, bob.id]
    b.send({"type": "call_end", "call_id": cid})  # call_end leaves a group call too
    assert a.expect("call_end") == {"type": "call_end", "call_id": cid, "reason": "hangup"}
    for sock in (a, b, c, d):
        assert state(sock, cid, 0)["state"] == "ended"
    records = [sock.expect("chat_message")["message"] for sock in (a, b, c, d)]
    assert len({r["id"] for r in records}) == 1
    call = records[0]["call"]
    assert (call["outcome"], call["caller_id"], call["group"]) == ("completed", alice.id, True)
    assert call["participants"] == [
        {"id": p.id, "username": p.username} for p in (alice, bob, carol)
    ]
    assert call["duration"] is not None
    assert [m["kind"] for m in dave.messages(room)][-1] == "call"
    b.send({"type": "call_resume", "call_id": cid})  # a participant resuming an ended call
    assert b.expect("call_end")["reason"] == "gone"


def test_an_unanswered_group_call_times_out_as_missed_and_declines_stop_the_ringing(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol), room = group_of(person, 3)
    a, b, b_phone, c = alice.connect(), bob.connect(), bob.connect(), carol.connect()
    cid = call_id()
    start(a, room, cid, media="audio")
    b.expect("group_call_ring")
    b_phone.expect("group_call_ring")
    b.send({"type": "group_call_leave", "call_id": cid})  # bob declines on one device
    assert b_phone.expect("call_rejected") == {
        "type": "call_rejected", "call_id": cid, "reason": "declined"
    }  # fmt: skip
    for sock in (a, c):
        assert sock.expect("call_timeout", timeout=30)["call_id"] == cid
    for sock in (a, b, c):
        assert state(sock, cid, 0)["state"] == "ended"
    call = a.expect("chat_message")["message"]["call"]
    assert (call["outcome"], call["media"], call["duration"]) == ("missed", "audio", None)
    assert call["participants"] == [{"id": alice.id, "username": alice.username}]

    # When everyone rung declines, the call ends at once.
    other = call_id()
    start(a, room, other)
    for sock in (b, c):
        sock.expect("group_call_ring", where=lambda f: f["call_id"] == other)
        sock.send({"type": "group_call_leave", "call_id": other})
    assert state(a, other, 0)["state"] == "ended"
    assert a.expect("chat_message")["message"]["call"]["outcome"] == "declined"


def test_someone_in_a_direct_call_is_not_rung_but_sees_the_group_call_and_is_busy(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol), room = group_of(person, 3)
    a, b, c = alice.connect(), bob.connect(), carol.connect()
    direct = bob.open_room(carol)
    one = call_id()
    b.send(offer(direct, carol, one))
    c.expect("call_offer")
    c.send({"type": "call_answer", "call_id": one, "sdp": FAKE_SDP})
    b.expect("call_answer")
    cid = call_id()
    start(a, room, cid)
    for sock in (b, c):
        assert state(sock, cid)["state"] == "ringing"
        sock.quiet("group_call_ring")
    b.send({"type": "group_call_join", "call_id": cid})
    assert b.expect("error")["reason"] == "busy"
    b.send({"type": "call_end", "call_id": one})
    c.expect("call_end")
    assert ids(join(b, cid)["participants"]) == [alice.id]
    c.send(offer(direct, bob, call_id()))  # and the other way round: bob is busy now
    assert c.expect("call_busy")


def test_a_dropped_socket_resumes_and_gets_what_was_sent_meanwhile_and_the_grace_period_ends(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol), room = group_of(person, 3)
    a, b, c = alice.connect(), bob.connect(), carol.connect()
    cid = in_call([a, b, c], room)
    c.close()
    a.send(description(cid, carol))  # kept for carol until she resumes
    c2 = carol.connect()
    (live,) = c2.welcome["group_calls"]
    assert (live["call_id"], ids(live["participants"])) == (cid, [alice.id, bob.id, carol.id])
    c2.send({"type": "call_resume", "call_id": cid})
    assert ids(c2.expect("group_call_joined")["participants"]) == [alice.id, bob.id]
    assert c2.expect("call_description")["from"]["id"] == alice.id
    c2.send({**description(cid, bob), "description": OFFER, "restart": True})
    assert b.expect("call_description")["restart"] is True

    # Gone past the grace period: dropped from the call; with one left, the call ends.
    c2.close()
    assert ids(state(a, cid, 2, timeout=40)["participants"]) == [alice.id, bob.id]
    b.close()
    assert a.expect("call_end", timeout=40)["reason"] == "disconnected"


def test_a_member_who_leaves_the_group_mid_call_is_dropped_from_it(
    person: Callable[[str], Person],
) -> None:
    (alice, bob, carol, _dave), room = group_of(person, 4)
    a, b, c = alice.connect(), bob.connect(), carol.connect()
    cid = in_call([a, b, c], room)
    assert carol.http.delete(f"/api/rooms/{room}/members/me").status_code == 204
    assert c.expect("call_end") == {"type": "call_end", "call_id": cid, "reason": "removed"}
    for sock in (a, b):
        assert ids(state(sock, cid, 2)["participants"]) == [alice.id, bob.id]
    c.send(candidate(cid, alice))
    assert c.expect("error")["reason"] == "not_found"
    a.quiet("ice_candidate")
    a.send(candidate(cid, bob))  # the rest carry on
    assert b.expect("ice_candidate")["from"]["id"] == alice.id


def test_a_group_call_survives_a_server_restart(server: ParleyServer) -> None:
    people = [Person(server, username(name)) for name in ("gra", "grb", "grc")]
    try:
        made = people[0].http.post(
            "/api/groups", json={"name": "Restart", "usernames": [p.username for p in people[1:]]}
        )
        room = int(made.json()["id"])
        cid = in_call([p.connect() for p in people], room)
        server.restart()
        socks = [p.connect() for p in people]
        for sock in socks:
            (live,) = sock.welcome["group_calls"]
            assert (live["call_id"], live["state"]) == (cid, "active")
            assert ids(live["participants"]) == [p.id for p in people]
            sock.send({"type": "call_resume", "call_id": cid})
            sock.expect("group_call_joined")
        socks[0].send(candidate(cid, people[2]))
        assert socks[2].expect("ice_candidate")["from"]["id"] == people[0].id
        socks[1].send({"type": "group_call_leave", "call_id": cid})
        assert ids(state(socks[0], cid, 2)["participants"]) == [people[0].id, people[2].id]
    finally:
        for someone in people:
            someone.close()


def test_a_group_call_between_two_instances_sharing_redis(instances: Cluster) -> None:
    a_server, b_server = instances.servers
    alice, bob, carol = (instances.person(n) for n in ("alice", "bob", "carol"))
    made = alice.http.post(
        "/api/groups", json={"name": "Cluster", "usernames": [bob.username, carol.username]}
    )
    room = int(made.json()["id"])
    a, b, c = alice.connect(server=a_server), bob.connect(server=b_server), carol.connect()
    cid = call_id()
    start(a, room, cid)
    b.expect("group_call_ring")
    assert ids(join(b, cid)["participants"]) == [alice.id]
    assert ids(join(c, cid)["participants"]) == [alice.id, bob.id]
    c.send(description(cid, bob))
    assert b.expect("call_description")["from"]["id"] == carol.id
    b.send(candidate(cid, alice))
    assert a.expect("ice_candidate")["from"]["id"] == bob.id
    c.quiet("ice_candidate")
    c.send({"type": "group_call_leave", "call_id": cid})
    assert ids(state(b, cid, 2)["participants"]) == [alice.id, bob.id]
    a.send({"type": "call_end", "call_id": cid})
    assert b.expect("call_end")["reason"] == "hangup"
    call = b.expect("chat_message")["message"]["call"]
    assert (call["outcome"], len(call["participants"])) == ("completed", 3)


def test_a_group_call_goes_on_when_the_call_leader_dies(instances: Cluster) -> None:
    leader = instances.leader()
    alice, bob, carol = (instances.person(n) for n in ("alice", "bob", "carol"))
    made = alice.http.post(
        "/api/groups", json={"name": "Leader", "usernames": [bob.username, carol.username]}
    )
    room = int(made.json()["id"])
    # Everyone on the node that does not lead, so only the registry's owner goes.
    a, b, c = (instances.connect_on(p, lambda node: node != leader)[0] for p in (alice, bob, carol))
    cid = in_call([a, b, c], room)
    instances.kill(leader)
    # Group signals go through the leader: the next one took the call over from the snapshot.
    c.send(candidate(cid, alice))
    assert a.expect("ice_candidate", timeout=30)["from"]["id"] == carol.id
    b.quiet("ice_candidate")
    assert instances.leader() != leader
    c.send({"type": "group_call_leave", "call_id": cid})
    assert ids(state(a, cid, 2, timeout=20)["participants"]) == [alice.id, bob.id]
    b.send({"type": "call_end", "call_id": cid})
    assert a.expect("call_end", timeout=20)["reason"] == "hangup"
    assert a.expect("chat_message")["message"]["call"]["outcome"] == "completed"


# --- in memory: Web Push, the cluster's fast path, the hand-over snapshot -----------------------


class Group:
    """A call registry in memory with one group room of four (1-4) and a direct room (1, 2)."""

    ROOM, DIRECT = 20, 10

    def __init__(self) -> None:
        users = {1: "alice", 2: "bob", 3: "carol", 4: "dave"}
        self.store = MemoryStore(users, {self.DIRECT: (1, 2)}, {self.ROOM: [1, 2, 3, 4]})
        self.hub = Hub(lambda user_id: set(users) - {user_id})
        self.clock = HandScheduler()
        self.pushes: list[tuple[int, Frame]] = []
        self.calls = self.registry()

    def registry(self) -> CallRegistry:
        def push(user: int, payload: Any) -> None:
            self.pushes.append((user, payload.model_dump(by_alias=True)))

        return CallRegistry(self.hub, self.store, self.clock, ring_timeout=30.0,
                            grace_period=15.0, ring_offline=push)  # fmt: skip

    def socket(self, user_id: int) -> FakeSocket:
        sock = FakeSocket(user_id)
        self.hub.add(sock)
        self.calls.socket_opened(sock)
        return sock

    def send(self, sock: FakeSocket, frame: Frame) -> None:
        self.calls.handle(sock, parse(json.dumps(frame)))  # type: ignore[arg-type]


def test_members_without_a_socket_are_rung_by_web_push_and_the_notice_closes_when_they_join() -> (
    None
):
    world = Group()
    a, b = world.socket(1), world.socket(2)
    cid = call_id()
    world.send(
        a, {"type": "group_call_start", "call_id": cid, "room_id": Group.ROOM, "media": "audio"}
    )
    assert b.of("group_call_ring")
    rung = {user: push for user, push in world.pushes}
    assert set(rung) == {3, 4}  # carol and dave have no socket
    alice = {"id": 1, "username": "alice"}
    assert rung[3] == {"type": "call_offer", "call_id": cid, "room_id": Group.ROOM,
                       "from": alice, "media": "audio", "group": True}  # fmt: skip
    world.pushes.clear()
    c = world.socket(3)  # carol opens the app from the notification: her socket rings too
    assert c.of("group_call_ring")[0]["call_id"] == cid
    world.send(c, {"type": "group_call_join", "call_id": cid})
    assert world.pushes == [(3, {"type": "call_answered_elsewhere", "call_id": cid})]
    world.clock.fire(30.0)  # the ring times out: dave's notification closes
    assert world.pushes[-1] == (4, {"type": "call_timeout", "call_id": cid})


def test_group_calls_get_no_fast_path_routes_and_survive_the_hand_over_snapshot() -> None:
    world = Group()
    a, b, c = world.socket(1), world.socket(2), world.socket(3)
    cid = call_id()
    world.send(
        a, {"type": "group_call_start", "call_id": cid, "room_id": Group.ROOM, "media": "video"}
    )
    world.send(b, {"type": "group_call_join", "call_id": cid})
    world.send(c, {"type": "group_call_join", "call_id": cid})
    # The cluster's relay carries only what routes() lists: a group call is never there.
    assert world.calls.routes() == {}
    saved = json.loads(json.dumps(world.calls.snapshot()))
    world.calls.close()

    world.calls = world.registry()  # the next process takes over
    world.calls.restore(saved)
    sockets = [world.socket(user_id) for user_id in (1, 2, 3)]
    for sock in sockets:
        world.send(sock, {"type": "call_resume", "call_id": cid})
        assert sock.of("group_call_joined")
    world.send(sockets[0], {"type": "ice_candidate", "call_id": cid, "candidate": None, "to": 3})
    assert sockets[2].of("ice_candidate")[0]["from"]["id"] == 1
    assert not sockets[1].of("ice_candidate")
