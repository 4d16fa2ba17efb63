"""Calls over the signalling socket of a real server, across restarts and a busy database."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from harness.servers import ParleyServer
from harness.wsclient import FAKE_SDP, Person, answered_call, call_id, offer, pair, username

# --- calls ---------------------------------------------------------------------------------


def test_a_call_rings_connects_ends_and_lands_in_the_room_history(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = call_id()
    a.send(offer(room, bob, cid))
    ringing = a.expect("call_ringing")
    assert ringing["polite"] is False
    incoming = b.expect("call_offer")
    assert incoming["from"] == {"id": alice.id, "username": alice.username}
    assert incoming["media"] == "video"
    assert incoming["polite"] is True
    a.send({"type": "ice_candidate", "call_id": cid, "candidate": {"candidate": "", "sdpMid": "0"}})
    assert b.expect("ice_candidate")["from"]["id"] == alice.id
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    assert a.expect("call_answer")["from"]["id"] == bob.id
    b.send({"type": "call_end", "call_id": cid})
    assert a.expect("call_end") == {"type": "call_end", "call_id": cid, "reason": "hangup"}
    record = a.expect("chat_message")["message"]
    assert record["kind"] == "call"
    assert record["call"]["outcome"] == "completed"
    assert record["call"]["media"] == "video"
    assert b.expect("chat_message")["message"]["id"] == record["id"]
    assert [m["kind"] for m in alice.messages(room)] == ["call"]


def test_an_unanswered_call_times_out_as_missed(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = call_id()
    a.send(offer(room, bob, cid, media="audio"))
    b.expect("call_offer")
    assert a.expect("call_timeout", timeout=30)["call_id"] == cid
    assert b.expect("call_timeout", timeout=30)["call_id"] == cid
    record = a.expect("chat_message")["message"]
    assert record["call"] == {
        "id": cid,
        "media": "audio",
        "outcome": "missed",
        "duration": None,
        "caller_id": alice.id,
        "reports": {"caller": None, "callee": None},
        "group": False,
        "participants": None,
    }


def test_call_signals_from_a_third_user_are_refused_and_never_delivered(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    mallory = person("mallory")
    a, b, m = alice.connect(), bob.connect(), mallory.connect()
    cid = call_id()
    a.send(offer(room, bob, cid))
    b.expect("call_offer")
    m.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    assert m.expect("error")["reason"] == "not_found"
    m.send({"type": "call_end", "call_id": cid})
    assert m.expect("error")["reason"] == "not_found"
    m.send(offer(room, bob, call_id()))
    assert m.expect("error")["reason"] == "not_found"
    a.quiet("call_answer")
    a.quiet("call_end")
    b.send({"type": "call_end", "call_id": cid})


def test_media_state_goes_only_to_the_other_participant_of_an_active_call(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    mallory = person("mallory")
    a, b, m = alice.connect(), bob.connect(), mallory.connect()
    b_other = bob.connect()
    cid = call_id()
    muted = {"type": "call_media", "call_id": cid, "audio": False, "video": True}
    a.send(offer(room, bob, cid))
    b.expect("call_offer")
    b_other.expect("call_offer")
    a.send(muted)  # still ringing: nobody to tell yet
    assert a.expect("error")["reason"] == "forbidden"
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer")
    b_other.expect("call_answered_elsewhere")
    m.send(muted)
    assert m.expect("error") == {
        "type": "error",
        "reason": "not_found",
        "message": "no such call",
        "ref_type": "call_media",
        "call_id": cid,
    }
    b.send({"type": "call_media", "call_id": cid, "audio": False, "video": False})
    assert a.expect("call_media") == {
        "type": "call_media",
        "call_id": cid,
        "audio": False,
        "video": False,
        "from": {"id": bob.id, "username": bob.username},
    }
    b.send({"type": "call_media", "call_id": cid, "audio": "no", "video": False})
    assert b.expect("error")["reason"] == "bad_message"
    a.send({"type": "call_media", "call_id": cid, "audio": True, "video": False})
    assert b.expect("call_media")["from"]["id"] == alice.id
    b_other.quiet("call_media")
    m.quiet("call_media")
    a.quiet("call_media")
    b.send({"type": "call_end", "call_id": cid})


def test_calling_someone_already_in_a_call_gets_busy(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    carol = person("carol")
    room_cb = carol.open_room(bob)
    a, b, c = alice.connect(), bob.connect(), carol.connect()
    first = answered_call(a, b, room, bob)
    second = call_id()
    c.send(offer(room_cb, bob, second))
    assert c.expect("call_busy")["call_id"] == second
    assert c.expect("chat_message")["message"]["call"]["outcome"] == "busy"
    a.send({"type": "call_end", "call_id": first})


def test_a_dropped_socket_can_resume_its_call_within_the_grace_period(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = answered_call(a, b, room, bob)
    b.close()
    b2 = bob.connect(welcome=False)
    welcome = b2.expect("welcome")
    assert [c["call_id"] for c in welcome["calls"]] == [cid]
    b2.send({"type": "call_resume", "call_id": cid})
    assert b2.expect("call_resumed")["polite"] is True
    a.send({"type": "ice_candidate", "call_id": cid, "candidate": None})
    assert b2.expect("ice_candidate")["call_id"] == cid
    b2.send({"type": "call_end", "call_id": cid})
    assert a.expect("call_end")["reason"] == "hangup"


def test_a_participant_gone_past_the_grace_period_ends_the_call(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = answered_call(a, b, room, bob)
    b.close()
    assert a.expect("call_end", timeout=30) == {
        "type": "call_end",
        "call_id": cid,
        "reason": "disconnected",
    }


def test_a_server_restart_closes_sockets_with_going_away(server: ParleyServer) -> None:
    someone = Person(server, username("restart"))
    try:
        sock = someone.connect()
        server.stop()
        assert sock.closed_with() == 1001
    finally:
        server.start()
        someone.close()


def test_an_active_call_survives_a_server_restart(server: ParleyServer) -> None:
    alice, bob = Person(server, username("rsa")), Person(server, username("rsb"))
    try:
        room = alice.open_room(bob)
        a, b = alice.connect(), bob.connect()
        cid = answered_call(a, b, room, bob)
        server.restart()
        a2, b2 = alice.connect(welcome=False), bob.connect(welcome=False)
        for sock in (a2, b2):
            assert [c["call_id"] for c in sock.expect("welcome")["calls"]] == [cid]
            sock.send({"type": "call_resume", "call_id": cid})
            sock.expect("call_resumed")
        a2.send({"type": "ice_candidate", "call_id": cid, "candidate": None})
        assert b2.expect("ice_candidate")["from"]["id"] == alice.id
        b2.send({"type": "call_end", "call_id": cid})
        assert a2.expect("call_end")["reason"] == "hangup"
        assert a2.expect("chat_message")["message"]["call"]["outcome"] == "completed"
    finally:
        alice.close()
        bob.close()


# --- chat storage off the signalling path --------------------------------------------------


@contextmanager
def room_locked(database_url: str, room: int) -> Iterator[None]:
    """Hold a lock that makes storing a chat message in `room` wait, as a busy writer would."""
    if database_url.startswith("sqlite"):
        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        lite.execute("BEGIN IMMEDIATE")  # the write lock: the server's insert waits for it
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
        return
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as pg:
        pg.execute("SELECT 1 FROM rooms WHERE id = %s FOR UPDATE", (room,))
        try:
            yield
        finally:
            pg.rollback()


def test_candidates_flow_while_a_chat_message_waits_for_the_database_then_acks_come_once_in_order(
    server: ParleyServer, person: Callable[[str], Person]
) -> None:
    alice, bob, room = pair(person)
    carol, dave, call_room = pair(person)
    a, b, c, d = alice.connect(), bob.connect(), carol.connect(), dave.connect()
    cid = answered_call(c, d, call_room, dave)
    with room_locked(server.database_url, room):
        for n in (1, 2):
            a.send({"type": "chat_message", "room_id": room, "client_id": f"w{n}", "text": f"{n}"})
        for n in range(5):  # the worker relays while alice's message waits for the database
            line = f"candidate:{n} 1 udp 1 127.0.0.1 9 typ host"
            c.send({"type": "ice_candidate", "call_id": cid, "candidate": {"candidate": line}})
            assert d.expect("ice_candidate", timeout=4)["candidate"]["candidate"] == line
        a.quiet("chat_ack")  # still waiting: the lock is what holds it
    acks = [a.expect("chat_ack", timeout=15), a.expect("chat_ack", timeout=15)]
    assert [ack["client_id"] for ack in acks] == ["w1", "w2"]
    assert all(ack["delivered"] for ack in acks)
    assert [b.expect("chat_message")["message"]["text"] for _ in acks] == ["1", "2"]
    a.quiet("chat_ack")
    assert [m["text"] for m in alice.messages(room)] == ["1", "2"]
