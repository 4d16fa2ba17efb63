"""The signalling socket of a real server (gunicorn + gevent over HTTPS), as clients see it."""

from __future__ import annotations

import gc
import itertools
import json
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection as WsprotoConnection
from wsproto.events import BytesMessage, Event, TextMessage
from wsproto.frame_protocol import FrameProtocol, Opcode

from backend.signaling.framing import FastReader, text_frame
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import FAKE_SDP, Person, Sock, call_id
from tests.conftest import DATABASES, fresh_database

_names = itertools.count()


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("ws")
    certs = make_test_certs(root / "certs")
    with (
        fresh_database(request, root) as database_url,
        parley_server(
            root,
            certs,
            database_url,
            # Long enough that a slow machine answers and resumes inside them.
            CALL_RING_TIMEOUT="10",
            CALL_GRACE_PERIOD="10",
            WS_MESSAGE_BURST="30",
        ) as running,
    ):
        yield running


@pytest.fixture
def person(server: ParleyServer) -> Iterator[Callable[[str], Person]]:
    made: list[Person] = []

    def make(prefix: str = "user") -> Person:
        someone = Person(server, f"{prefix}{next(_names)}")
        made.append(someone)
        return someone

    yield make
    for someone in made:
        someone.close()


def pair(person: Callable[[str], Person]) -> tuple[Person, Person, int]:
    alice, bob = person("alice"), person("bob")
    return alice, bob, alice.open_room(bob)


# --- the upgrade ---------------------------------------------------------------------------


@contextmanager
def leaky_refusal() -> Iterator[None]:
    """websocket-client leaves the socket of a refused handshake open: collect it quietly."""
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_signed_out_upgrade_is_refused_with_401(server: ParleyServer) -> None:
    with leaky_refusal(), pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            server.ws_url, origin=server.url, sslopt={"ca_certs": str(server.certs / "ca.crt")}
        )
    assert refused.value.status_code == 401


def test_cross_origin_upgrade_is_refused_with_403(person: Callable[[str], Person]) -> None:
    alice = person("alice")
    with leaky_refusal(), pytest.raises(websocket.WebSocketBadStatusException) as refused:
        alice.connect(origin="https://evil.example")
    assert refused.value.status_code == 403


def test_welcome_names_the_user_and_online_room_peers(person: Callable[[str], Person]) -> None:
    alice, bob, _ = pair(person)
    bob.connect()
    welcome = alice.connect(welcome=False).recv()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == {"id": alice.id, "username": alice.username}
    assert welcome["online"] == [bob.id]
    assert welcome["calls"] == []


# --- presence ------------------------------------------------------------------------------


def test_presence_goes_to_room_peers_on_first_open_and_last_close(
    person: Callable[[str], Person],
) -> None:
    alice, bob, _ = pair(person)
    stranger = person("carol")
    a = alice.connect()
    s = stranger.connect()
    phone = bob.connect()
    assert a.expect("presence") == {"type": "presence", "user_id": bob.id, "online": True}
    laptop = bob.connect()
    phone.close()
    a.quiet("presence")  # bob still has his laptop
    laptop.close()
    assert a.expect("presence") == {"type": "presence", "user_id": bob.id, "online": False}
    s.quiet("presence")  # carol shares no room with bob


def test_opening_a_room_shares_presence_at_once(person: Callable[[str], Person]) -> None:
    alice, bob = person("alice"), person("bob")
    a, b = alice.connect(), bob.connect()
    alice.open_room(bob)
    assert a.expect("presence")["user_id"] == bob.id
    assert b.expect("presence")["user_id"] == alice.id


# --- bad input -----------------------------------------------------------------------------


def test_ping_gets_pong_with_the_same_token(person: Callable[[str], Person]) -> None:
    sock = person("alice").connect()
    sock.send({"type": "ping", "t": 42})
    assert sock.expect("pong") == {"type": "pong", "t": 42}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "chat_message", "room_id": "1", "client_id": "x", "text": "hi"}', "bad_message"),
        ('{"type": "call_end", "call_id": "not-a-uuid"}', "bad_message"),
        (r'{"type": "\ud800"}', "bad_message"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_usable(
    person: Callable[[str], Person], frame: str, reason: str
) -> None:
    sock = person("alice").connect()
    sock.send(frame)
    error = sock.expect("error")
    assert error["reason"] == reason
    assert error["message"]
    sock.send({"type": "ping", "t": 1})
    assert sock.expect("pong")["t"] == 1


def test_a_frame_over_64_kib_closes_the_socket_with_1009(person: Callable[[str], Person]) -> None:
    sock = person("alice").connect()
    sock.send(json.dumps({"type": "ping", "t": "x" * (65 * 1024)}))
    assert sock.closed_with() == 1009


def test_a_flooding_client_is_throttled_then_closed_with_1008(
    person: Callable[[str], Person],
) -> None:
    sock = person("alice").connect()
    for n in range(40):  # past the burst of 30
        sock.send({"type": "ping", "t": n})
    assert sock.expect("error")["reason"] == "rate_limited"
    try:
        for n in range(200):
            sock.send({"type": "ping", "t": n})
    except (OSError, websocket.WebSocketException):
        pass  # the server may close while we are still sending
    assert sock.closed_with() == 1008


# --- chat ----------------------------------------------------------------------------------


def test_chat_over_the_socket_is_stored_acked_and_delivered_with_server_identity(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    a.send(
        {
            "type": "chat_message",
            "room_id": room,
            "client_id": "c-1",
            "text": "hello",
            "from": {"id": bob.id, "username": bob.username},  # forged, must be ignored
        }
    )
    ack = a.expect("chat_ack")
    assert ack["client_id"] == "c-1"
    assert ack["delivered"] is True
    got = b.expect("chat_message")["message"]
    assert got["text"] == "hello"
    assert got["sender"] == {"id": alice.id, "username": alice.username}
    assert got["id"] == ack["message"]["id"]
    assert [m["text"] for m in bob.messages(room)] == ["hello"]


def test_a_resent_client_id_is_acked_with_the_same_message_and_not_delivered_twice(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    frame = {"type": "chat_message", "room_id": room, "client_id": "same", "text": "once"}
    a.send(frame)
    first = a.expect("chat_ack")["message"]
    b.expect("chat_message")
    a.send(frame)
    assert a.expect("chat_ack")["message"]["id"] == first["id"]
    b.quiet("chat_message")
    assert len(bob.messages(room)) == 1


def test_chat_reaches_the_senders_other_devices(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    phone, laptop = alice.connect(), alice.connect()
    phone.send({"type": "chat_message", "room_id": room, "client_id": "d", "text": "sync"})
    phone.expect("chat_ack")
    assert laptop.expect("chat_message")["message"]["text"] == "sync"


def test_chat_to_a_room_you_are_not_in_is_refused(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    mallory = person("mallory")
    m, b = mallory.connect(), bob.connect()
    m.send({"type": "chat_message", "room_id": room, "client_id": "x", "text": "psst"})
    assert m.expect("error")["reason"] == "not_found"
    b.quiet("chat_message")
    assert bob.messages(room) == []


def test_a_nul_in_chat_text_is_refused_as_bad_input_on_every_database(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    a.send({"type": "chat_message", "room_id": room, "client_id": "n1", "text": "a\u0000b"})
    error = a.expect("error")
    assert (error["reason"], error["ref_type"]) == ("bad_message", "chat_message")
    assert "NUL" in error["message"]
    a.send({"type": "chat_message", "room_id": room, "client_id": "n2", "text": "still here"})
    assert a.expect("chat_ack")["client_id"] == "n2"
    assert b.expect("chat_message")["message"]["text"] == "still here"


def test_a_message_posted_over_http_arrives_on_the_socket(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    b = bob.connect()
    posted = alice.http.post(
        f"/api/rooms/{room}/messages", json={"client_id": "h-1", "text": "via http"}
    )
    assert posted.status_code == 201
    assert b.expect("chat_message")["message"]["text"] == "via http"


def test_signing_out_closes_that_sessions_sockets_only(
    server: ParleyServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    other_session = Person(server, alice.username)
    try:
        mine, theirs = alice.connect(), other_session.connect()
        assert alice.http.post("/api/logout").status_code == 204
        assert mine.closed_with() == 1000
        theirs.send({"type": "ping", "t": 7})
        assert theirs.expect("pong")["t"] == 7
    finally:
        other_session.close()


# --- calls ---------------------------------------------------------------------------------


def offer(room: int, to: Person, cid: str, media: str = "video") -> dict[str, object]:
    return {
        "type": "call_offer",
        "call_id": cid,
        "room_id": room,
        "to": to.id,
        "media": media,
        "sdp": FAKE_SDP,
    }


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
    first = call_id()
    a.send(offer(room, bob, first))
    b.expect("call_offer")
    b.send({"type": "call_answer", "call_id": first, "sdp": FAKE_SDP})
    a.expect("call_answer")
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
    cid = call_id()
    a.send(offer(room, bob, cid))
    b.expect("call_offer")
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer")
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
    cid = call_id()
    a.send(offer(room, bob, cid))
    b.expect("call_offer")
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer")
    b.close()
    assert a.expect("call_end", timeout=30) == {
        "type": "call_end",
        "call_id": cid,
        "reason": "disconnected",
    }


def test_a_server_restart_closes_sockets_with_going_away(server: ParleyServer) -> None:
    someone = Person(server, f"restart{next(_names)}")
    try:
        sock = someone.connect()
        server.stop()
        assert sock.closed_with() == 1001
    finally:
        server.start()
        someone.close()


def test_an_active_call_survives_a_server_restart(server: ParleyServer) -> None:
    alice, bob = Person(server, f"rsa{next(_names)}"), Person(server, f"rsb{next(_names)}")
    try:
        room = alice.open_room(bob)
        a, b = alice.connect(), bob.connect()
        cid = call_id()
        a.send(offer(room, bob, cid))
        b.expect("call_offer")
        b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
        a.expect("call_answer")
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
    cid = call_id()
    c.send(offer(call_room, dave, cid))
    d.expect("call_offer")
    d.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    c.expect("call_answer")
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


# --- frames the server writes itself (backend/signaling/framing.py) -------------------------

FRAME_SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000]


@pytest.mark.parametrize("size", FRAME_SIZES)
def test_a_text_frame_of_any_length_class_parses_in_an_independent_client(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)  # two-byte characters: bytes, not characters
    frame = text_frame(text)
    assert frame[0] == 0x81  # final text frame; no mask bit from a server
    assert frame[1] == (size if size < 126 else 126 if size < 65536 else 127)
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(frame)
    [got] = list(client.received_frames())
    assert (got.opcode, got.payload, got.frame_finished, got.message_finished) == (
        Opcode.TEXT,
        text,
        True,
        True,
    )


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server that accepts client frames past 64 KiB, so it can be made to send such frames."""
    root = tmp_path_factory.mktemp("ws-frames")
    with parley_server(
        root,
        make_test_certs(root / "certs"),
        WS_MAX_MESSAGE=str(256 * 1024),
        WS_MESSAGE_BURST="100",
    ) as running:
        yield running


def raw_text(sock: Sock, kind: str) -> str:
    """Return the next frame of type `kind` as the text the client received."""
    sock.raw.settimeout(10)
    while True:
        text = str(sock.raw.recv())
        if json.loads(text)["type"] == kind:
            return text


def sized(byte_count: int, wide: str) -> str:
    """Return a string of exactly byte_count UTF-8 bytes, mostly of the multi-byte `wide`."""
    width = len(wide.encode())
    return wide * (byte_count // width) + "a" * (byte_count % width)


def test_frames_at_every_length_boundary_reach_a_real_client_intact(
    roomy_server: ParleyServer,
) -> None:
    alice = Person(roomy_server, f"frame{next(_names)}")
    bob = Person(roomy_server, f"frame{next(_names)}")
    try:
        room = alice.open_room(bob)
        a, b = alice.connect(), bob.connect()
        # Short frames: a pong carries the ping's token back, 22 bytes around it.
        for size in (22, 125, 126, 127, 200):
            token = sized(size - 22, "😀")
            a.send(json.dumps({"type": "ping", "t": token}, ensure_ascii=False))
            text = raw_text(a, "pong")
            assert len(text.encode()) == size
            assert json.loads(text) == {"type": "pong", "t": token}
        # Long frames: a description relayed in an active call, sized through its SDP.
        cid = call_id()
        a.send(offer(room, bob, cid))
        b.expect("call_offer")
        b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
        a.expect("call_answer")

        def relay(sdp: str) -> str:
            description = {"type": "offer", "sdp": sdp}
            frame = {"type": "call_description", "call_id": cid, "description": description}
            a.send(json.dumps(frame, ensure_ascii=False))
            text = raw_text(b, "call_description")
            assert json.loads(text)["description"] == description
            return text

        overhead = len(relay("x").encode()) - 1
        for size in (1000, 65535, 65536, 70000):
            assert len(relay(sized(size - overhead, "€")).encode()) == size
        b.send({"type": "ping", "t": "still open"})
        assert b.expect("pong")["t"] == "still open"
    finally:
        alice.close()
        bob.close()


def client_frame(first: int, payload: bytes, *, mask: bool = True, wide: bool = False) -> bytes:
    """Return a client frame: first byte (FIN, RSV, opcode), payload masked unless told not."""
    size = len(payload)
    bit = 0x80 if mask else 0
    if wide or size >= 126:  # wide: the 16-bit length even for a short payload (not allowed)
        head = bytes((first, bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, bit | size))
    if not mask:
        return head + payload
    key = b"\x1f\x8b\x37\xc4"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


CLIENT_FRAMES = {
    "text": client_frame(0x81, json.dumps({"type": "ping", "t": "é😀"}).encode()),
    "empty text": client_frame(0x81, b""),
    "unicode text": client_frame(0x81, "é😀 ok".encode()),
    "long text": client_frame(0x81, b"x" * 20_000),
    "ping": client_frame(0x89, b"are you there"),
    "pong": client_frame(0x8A, b""),
    "binary": client_frame(0x82, b"\x00\x01"),
    "first fragment": client_frame(0x01, b"hel"),
    "last fragment": client_frame(0x80, b"lo"),
    "bad utf-8": client_frame(0x81, b"\xff\xfe"),
    "unmasked": client_frame(0x81, b"hi", mask=False),
    "padded length": client_frame(0x81, b"hi", wide=True),
    "reserved bit": client_frame(0xC1, b"hi"),
    "close": client_frame(0x88, (1000).to_bytes(2, "big") + b"bye"),
}


def messages_and_controls(events: Iterable[Event]) -> list[tuple[str, object]]:
    """Fold events into whole messages and control events, as simple-websocket reads them."""
    out: list[tuple[str, object]] = []
    parts: list[object] = []
    for event in events:
        if isinstance(event, TextMessage | BytesMessage):
            parts.append(event.data)
            if event.message_finished:
                joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
                out.append((type(event).__name__, joined))
                parts = []
        else:
            out.append((type(event).__name__, repr(event)))
    return out


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.sampled_from(sorted(CLIENT_FRAMES)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=25_000), max_size=6),
)
def test_the_fast_reader_reads_any_frames_in_any_chunks_as_wsproto_does(
    frames: list[str], cuts: list[int]
) -> None:
    stream = b"".join(CLIENT_FRAMES[name] for name in frames)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    plain = WsprotoConnection(ConnectionType.SERVER)
    fast = FastReader(WsprotoConnection(ConnectionType.SERVER))
    seen: dict[str, list[Event]] = {"plain": [], "fast": []}
    for chunk in chunks:
        for name, reader in (("plain", plain), ("fast", fast)):
            reader.receive_data(chunk)
            seen[name] += list(reader.events())
    assert messages_and_controls(seen["fast"]) == messages_and_controls(seen["plain"])
