"""The signalling socket of a real server (gunicorn + gevent, HTTPS): upgrade, presence, chat."""

from __future__ import annotations

import base64
import gc
import json
import os
import socket
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import websocket

from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import Person, pair, username

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


def test_a_client_gone_during_the_upgrade_leaves_a_line_in_the_log_and_no_traceback(
    server: ParleyServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    assert server.log is not None
    start = len(server.log.read_text())
    for _ in range(20):
        # The upgrade request, then a reset at once: the server's 101 has no one to go to.
        tls = server.ssl_context().wrap_socket(
            socket.create_connection(("127.0.0.1", server.port)), server_hostname="localhost"
        )
        key = base64.b64encode(os.urandom(16)).decode()
        tls.sendall(
            f"GET /ws HTTP/1.1\r\nHost: localhost:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.url}\r\nCookie: {alice.cookie_header()}\r\n\r\n".encode()
        )
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()
    deadline = time.monotonic() + 30
    while "ended early" not in (log := server.log.read_text()[start:]):
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    assert "Traceback" not in log, log
    alice.connect()  # and the server serves on


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


# --- sockets outlive their upgrade request ---------------------------------------------------


def test_open_sockets_take_none_of_gunicorns_connection_slots(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A socket is served in a greenlet of its own and its upgrade request ends (Signaling.adopt).

    Before, each open socket held one of gunicorn's `worker_connections` for its whole life: with
    4 of them, the fifth socket's handshake and every HTTP request waited for a socket to close.
    """
    root = tmp_path_factory.mktemp("slots")
    with parley_server(root, make_test_certs(root / "certs"), WORKER_CONNECTIONS="4") as server:
        alice = Person(server, username("alice"))
        try:
            sockets = [alice.connect() for _ in range(10)]  # each read its welcome
            assert alice.http.get("/api/me").json()["username"] == alice.username
            for n, sock in enumerate(sockets):
                sock.send({"type": "ping", "t": n})
                assert sock.expect("pong")["t"] == n
        finally:
            alice.close()
