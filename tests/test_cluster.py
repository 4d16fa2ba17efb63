"""Several workers and instances behind one Redis: calls, chat and presence between them.

Real gunicorn servers on loopback share one database and a real redis-server started here.
Which worker holds a socket is read from Redis (the presence hash), and workers are killed
with SIGKILL to see the cluster clean up after them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable

from backend.signaling.cluster import LEASE
from harness.cluster import GRACE, Cluster
from harness.wsclient import FAKE_SDP, Person, Sock, call_id


def offer(room: int, to: Person, cid: str) -> dict[str, object]:
    return {"type": "call_offer", "call_id": cid, "room_id": room, "to": to.id, "media": "audio",
            "sdp": FAKE_SDP}  # fmt: skip


def ice(cid: str, n: int) -> dict[str, object]:
    candidate = {"candidate": f"candidate:{n} 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    return {"type": "ice_candidate", "call_id": cid, "candidate": candidate}


def online(user: Person, state: bool) -> Callable[[dict[str, object]], bool]:
    return lambda f: f["user_id"] == user.id and f["online"] is state


def start_call(a: Sock, b: Sock, room: int, bob: Person) -> str:
    """alice (socket a) calls bob (socket b), bob answers; return the call id."""
    cid = call_id()
    a.send(offer(room, bob, cid))
    a.expect("call_ringing", timeout=10)
    assert b.expect("call_offer", timeout=10)["call_id"] == cid
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer", timeout=10)
    return cid


def test_presence_chat_and_a_call_between_two_instances(instances: Cluster) -> None:
    a_server, b_server = instances.servers
    alice, bob = instances.person("alice"), instances.person("bob")
    room = alice.open_room(bob)
    a = alice.connect(server=a_server)
    b = bob.connect(server=b_server)
    assert instances.nodes_of(alice) != instances.nodes_of(bob)
    assert b.welcome["online"] == [alice.id]
    a.expect("presence", where=online(bob, True))

    # Chat over the socket, acked as delivered to someone on the other instance.
    b.send({"type": "chat_message", "room_id": room, "client_id": "c1", "text": "hi from B"})
    assert b.expect("chat_ack")["delivered"] is True
    got = a.expect("chat_message")["message"]
    assert (got["text"], got["sender"]["id"]) == ("hi from B", bob.id)
    # And a message posted over HTTPS on A reaches bob's socket on B.
    alice.http.post(f"/api/rooms/{room}/messages", json={"client_id": "h1", "text": "via A"})
    assert b.expect("chat_message")["message"]["text"] == "via A"

    # A whole call: offer, ringing, answer, candidates both ways, hang-up, the record.
    cid = start_call(a, b, room, bob)
    a.send(ice(cid, 1))
    assert b.expect("ice_candidate")["from"]["id"] == alice.id
    b.send(ice(cid, 2))
    assert a.expect("ice_candidate")["from"]["id"] == bob.id
    b.send({"type": "call_end", "call_id": cid})
    assert a.expect("call_end")["reason"] == "hangup"
    assert a.expect("chat_message")["message"]["call"]["outcome"] == "completed"
    assert b.expect("chat_message")["message"]["call"]["outcome"] == "completed"
    # The direct relay ended with the call: a late candidate is refused, never delivered.
    a.send(ice(cid, 3))
    assert a.expect("error")["reason"] == "not_found"
    b.quiet("ice_candidate")

    # Going offline on B is seen on A.
    b.close()
    a.expect("presence", where=online(bob, False))


def test_busy_and_answered_elsewhere_span_instances(instances: Cluster) -> None:
    a_server, b_server = instances.servers
    alice, bob, carol = (instances.person(n) for n in ("alice", "bob", "carol"))
    room = alice.open_room(bob)
    carol_room = carol.open_room(bob)
    a = alice.connect(server=a_server)
    phone, laptop = bob.connect(server=a_server), bob.connect(server=b_server)
    cid = call_id()
    a.send(offer(room, bob, cid))
    phone.expect("call_offer")
    laptop.expect("call_offer")
    laptop.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer")
    assert phone.expect("call_answered_elsewhere")["call_id"] == cid

    c = carol.connect(server=b_server)
    busy = call_id()
    c.send(offer(carol_room, bob, busy))
    assert c.expect("call_busy")["call_id"] == busy
    phone.quiet("call_offer")


def test_two_workers_of_one_instance_route_chat_and_calls(workers: Cluster) -> None:
    alice, bob = workers.person("alice"), workers.person("bob")
    room = alice.open_room(bob)
    a, b, alice_node, bob_node = workers.apart(alice, bob)
    assert workers.pid_of(alice_node) != workers.pid_of(bob_node)

    a.send({"type": "chat_message", "room_id": room, "client_id": "w1", "text": "across"})
    assert a.expect("chat_ack")["delivered"] is True
    assert b.expect("chat_message")["message"]["text"] == "across"
    cid = start_call(a, b, room, bob)
    b.send(ice(cid, 1))
    assert a.expect("ice_candidate")["call_id"] == cid
    a.send({"type": "call_end", "call_id": cid})
    assert b.expect("call_end")["reason"] == "hangup"


def test_a_killed_worker_takes_its_users_offline_and_ends_their_calls(workers: Cluster) -> None:
    alice, bob, carol = (workers.person(n) for n in ("alice", "bob", "carol"))
    room = alice.open_room(bob)
    bob.open_room(carol)
    a, b, _, bob_node = workers.apart(alice, bob)
    cid = start_call(a, b, room, bob)

    workers.kill(bob_node)
    # Presence: bob's only socket went with the worker.
    a.expect("presence", timeout=10, where=online(bob, False))
    # The registry unbinds his socket; the grace period runs out; alice is told.
    end = a.expect("call_end", timeout=10 + GRACE)
    assert (end["call_id"], end["reason"]) == (cid, "disconnected")
    assert a.expect("chat_message")["message"]["call"]["outcome"] == "completed"
    # Nobody is left "busy": bob, back on a new worker, can be called again.
    b2 = bob.connect()
    again = call_id()
    a.send(offer(room, bob, again))
    a.expect("call_ringing", timeout=10)
    assert b2.expect("call_offer", timeout=10)["call_id"] == again
    assert workers.redis.hkeys(workers.key("presence", bob.id)) != [bob_node]


def test_a_call_survives_its_worker_dying_when_the_user_resumes(workers: Cluster) -> None:
    alice, bob = workers.person("alice"), workers.person("bob")
    room = alice.open_room(bob)
    a, b, _, bob_node = workers.apart(alice, bob)
    cid = start_call(a, b, room, bob)

    workers.kill(bob_node)
    b2 = bob.connect()  # what the app does: reconnect at once, then resume
    assert [c["call_id"] for c in b2.welcome["calls"]] == [cid]
    b2.send({"type": "call_resume", "call_id": cid})
    b2.expect("call_resumed", timeout=10)
    a.send(ice(cid, 7))
    assert b2.expect("ice_candidate", timeout=10)["candidate"]["candidate"].startswith(
        "candidate:7"
    )
    a.quiet("call_end", seconds=GRACE + 2)


def test_calls_go_on_when_the_call_leader_dies(instances: Cluster) -> None:
    leader = instances.leader()
    # Put both people on the instance that does not lead.
    alice, bob = instances.person("alice"), instances.person("bob")
    room = alice.open_room(bob)
    sockets = {}
    for person in (alice, bob):
        for server in instances.servers:
            sock = person.connect(server=server)
            if instances.nodes_of(person) != {leader}:
                sockets[person.id] = sock
                break
            sock.close()
            person.sockets.remove(sock)
            instances._wait(lambda p=person: not instances.nodes_of(p))
    a, b = sockets[alice.id], sockets[bob.id]
    cid = start_call(a, b, room, bob)

    instances.kill(leader)
    # Candidates of an active call go node to node and do not need the leader.
    a.send(ice(cid, 9))
    got = b.expect("ice_candidate", timeout=10)
    assert got["candidate"]["candidate"].startswith("candidate:9")
    # Hanging up does: it waits for the next leader, which took the call over from the snapshot.
    b.send({"type": "call_end", "call_id": cid})
    assert a.expect("call_end", timeout=15)["reason"] == "hangup"
    assert instances.leader() != leader
    assert a.expect("chat_message")["message"]["call"]["outcome"] == "completed"


class Reader:
    """Read a socket continuously on a thread, so nothing waits in a buffer while a test acts."""

    def __init__(self, sock: Sock) -> None:
        self.sock = sock
        self.frames: list[dict[str, object]] = []
        self.closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                frame = self.sock.recv(1)
            except TimeoutError:
                continue
            except Exception:  # closed by the server (or by the test at the end)
                self.closed = True
                return
            with self._lock:
                self.frames.append(frame)

    def of(self, kind: str, cid: str | None = None) -> list[dict[str, object]]:
        with self._lock:
            return [f for f in self.frames if f["type"] == kind and cid in (None, f.get("call_id"))]

    def records(self) -> list[str]:
        """The ids of the calls whose record (a timeline message) arrived."""
        messages = [f["message"] for f in self.of("chat_message")]
        return [m["call"]["id"] for m in messages if m["call"]]  # type: ignore[index]

    def candidates(self, cid: str) -> list[int]:
        """The numbers of the candidates received for a call, sorted."""
        # Sorted: a route that appears mid-stream may let a later candidate overtake an earlier
        # one on its way through the leader (candidates are independent; duplicates still show).
        return sorted(int(str(f["candidate"]["candidate"]).split()[0].split(":")[1])  # type: ignore[index]
                      for f in self.of("ice_candidate", cid))  # fmt: skip

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert not self.closed, f"socket closed while waiting for {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.frames[-8:]}"
            time.sleep(0.05)


def test_a_paused_call_leader_wakes_without_doubling_or_losing_signals(instances: Cluster) -> None:
    """SIGSTOP the leader's worker past its lease and heartbeat, let the other node take over,
    SIGCONT it: no call is answered or recorded twice, no candidate is lost or doubled, and the
    sockets it kept agree with the new leader."""
    leader = instances.leader()
    alice, bob, carol, dave = (instances.person(n) for n in ("alice", "bob", "carol", "dave"))
    room = alice.open_room(bob)
    other_room = carol.open_room(dave)
    a, _ = instances.connect_on(alice, lambda node: node == leader)
    b, other = instances.connect_on(bob, lambda node: node != leader)
    c, _ = instances.connect_on(carol, lambda node: node == other)
    d, _ = instances.connect_on(dave, lambda node: node == other)
    ra, rb, rc, rd = (Reader(s) for s in (a, b, c, d))

    # A call rings (alice on the leader's node calls bob on the other) when the leader stops.
    ringing = call_id()
    a.send(offer(room, bob, ringing))
    ra.wait(lambda: bool(ra.of("call_ringing", ringing)), "ringing")
    rb.wait(lambda: bool(rb.of("call_offer", ringing)), "the offer")
    pid = instances.pid_of(leader)
    os.kill(pid, signal.SIGSTOP)
    try:
        # During the stop: bob answers and trickles, alice trickles into her stopped node, and
        # a new call between two people on the live node rings and is answered.
        b.send({"type": "call_answer", "call_id": ringing, "sdp": FAKE_SDP})
        for n in (101, 102, 103):
            b.send(ice(ringing, n))
        for n in (1, 2, 3):
            a.send(ice(ringing, n))
        fresh = call_id()
        c.send(offer(other_room, dave, fresh))
        rd.wait(lambda: bool(rd.of("call_offer", fresh)), "an offer while the leader is stopped")
        d.send({"type": "call_answer", "call_id": fresh, "sdp": FAKE_SDP})
        rc.wait(lambda: bool(rc.of("call_answer", fresh)), "an answer while the leader is stopped")
        # The other node takes the lease, and declares the stopped one dead.
        rb.wait(lambda: instances.leader() != leader, "the lease to move")
        rb.wait(lambda: bool(rb.of("presence")) and rb.of("presence")[-1]["online"] is False,
                "alice to go offline with her node")  # fmt: skip
        time.sleep(2 * LEASE)  # the fault: stopped for twice the lease
    finally:
        os.kill(pid, signal.SIGCONT)

    # After the wake: every signal sent during the stop arrives, once.
    ra.wait(lambda: len(ra.of("call_answer", ringing)) >= 1, "bob's answer")
    rb.wait(lambda: rb.candidates(ringing) == [1, 2, 3], "alice's candidates from the stop")
    ra.wait(lambda: ra.candidates(ringing) == [101, 102, 103], "bob's candidates")
    # And the woken node's sockets work: new candidates both ways, once each.
    a.send(ice(ringing, 4))
    b.send(ice(ringing, 104))
    rb.wait(lambda: rb.candidates(ringing) == [1, 2, 3, 4], "a candidate after the wake")
    ra.wait(lambda: ra.candidates(ringing) == [101, 102, 103, 104], "a candidate after the wake")
    # Both sides agree with the survivor: alice is online again, the call is live and both
    # sockets are bound to it at the new leader.
    rb.wait(lambda: rb.of("presence")[-1]["online"] is True, "alice back online")
    snapshot = {
        c["id"]: c for c in json.loads(instances.redis.get(instances.key("calls-snapshot")))
    }
    assert snapshot[ringing]["state"] == "active"
    assert snapshot[ringing]["caller_conn"] and snapshot[ringing]["callee_conn"]

    b.send({"type": "call_end", "call_id": ringing})
    c.send({"type": "call_end", "call_id": fresh})
    ra.wait(lambda: bool(ra.of("call_end", ringing)), "the hang-up")
    rd.wait(lambda: bool(rd.of("call_end", fresh)), "the other hang-up")
    ra.wait(lambda: ringing in ra.records(), "the call record")
    rd.wait(lambda: fresh in rd.records(), "the other call record")
    # Nobody answered twice, nobody heard a different ending, each call has one record.
    assert len(ra.of("call_answer", ringing)) == 1
    assert len(rc.of("call_answer", fresh)) == 1
    assert [f["reason"] for f in ra.of("call_end", ringing)] == ["hangup"]
    assert rb.of("call_end", ringing) == [] and rc.of("call_end", fresh) == []
    assert [f["reason"] for f in rd.of("call_end", fresh)] == ["hangup"]
    assert [f["reason"] for f in ra.of("error")] == [] and rb.of("error") == []
    for person, room_id, cid in ((alice, room, ringing), (carol, other_room, fresh)):
        records = [m for m in person.messages(room_id) if m["call"] and m["call"]["id"] == cid]
        assert [r["call"]["outcome"] for r in records] == ["completed"]
    assert rb.candidates(ringing) == [1, 2, 3, 4] and ra.candidates(ringing) == [101, 102, 103, 104]
    assert not (ra.closed or rb.closed or rc.closed or rd.closed)
