"""Ticks from the server: Sent, Delivered (reached a device of the other person), Read.

Real WebSocket clients against real servers, on SQLite and PostgreSQL, and across two instances
sharing Redis. The sender sees each change live as a `receipt` frame and the same after a reload
(the markers in `GET /api/rooms/<id>/messages`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.cluster import Cluster
from harness.wsclient import Person, Sock

Receipt = dict[str, Any]


def send(sock: Sock, room: int, client_id: str, text: str = "hi") -> dict[str, Any]:
    """Send a chat message on a socket and return its ack."""
    sock.send({"type": "chat_message", "room_id": room, "client_id": client_id, "text": text})
    ack: dict[str, Any] = sock.expect("chat_ack", where=lambda f: f["client_id"] == client_id)
    return ack


def ticks(sender: Person, room: int) -> dict[str, int]:
    """What the sender's fresh page (after a reload) learns: the other person's markers."""
    response = sender.http.get(f"/api/rooms/{room}/messages", params={"limit": 200})
    response.raise_for_status()
    body = response.json()
    return {"delivered_id": body["delivered_id"], "read_id": body["read_id"]}


def tick_of(marks: dict[str, int], message_id: int) -> str:
    """The label a sender's own message shows for these markers (as pwa/js/chat.js does)."""
    if marks["read_id"] >= message_id:
        return "Read"
    return "Delivered" if marks["delivered_id"] >= message_id else "Sent"


def receipt_for(room: int, message_id: int, kind: str) -> Callable[[Receipt], bool]:
    """Match a receipt of `room` whose `kind` marker reached message_id."""
    return lambda f: f["room_id"] == room and f[kind] >= message_id


FETCHES: dict[str, Callable[[Person, int], object]] = {
    "opens the app (room list)": lambda who, room: who.http.get("/api/rooms"),
    "opens the chat (messages)": lambda who, room: who.http.get(f"/api/rooms/{room}/messages"),
}


@pytest.mark.parametrize("fetch", FETCHES, ids=list(FETCHES))
def test_a_message_to_an_offline_person_is_sent_then_delivered_then_read_live_and_after_reload(
    person: Callable[[str], Person], fetch: str
) -> None:
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    a = alice.connect()

    ack = send(a, room, "m1")
    message_id = ack["message"]["id"]
    assert ack["delivered"] is False  # bob has no socket
    assert tick_of(ticks(alice, room), message_id) == "Sent"

    # Bob's device fetches: the message reached it, and alice hears so at once.
    FETCHES[fetch](bob, room)
    delivered = a.expect("receipt", where=receipt_for(room, message_id, "delivered_id"))
    assert delivered == {
        "type": "receipt",
        "room_id": room,
        "delivered_id": message_id,
        "read_id": 0,
    }
    assert tick_of(ticks(alice, room), message_id) == "Delivered"

    # Bob reads it: his read marker passes it.
    bob.http.post(f"/api/rooms/{room}/read", json={"message_id": message_id}).raise_for_status()
    read = a.expect("receipt", where=receipt_for(room, message_id, "read_id"))
    assert read["read_id"] == message_id
    assert tick_of(ticks(alice, room), message_id) == "Read"

    # A reload of alice's page: a new socket and a fresh fetch say the same.
    a.close()
    alice.connect()
    assert tick_of(ticks(alice, room), message_id) == "Read"


def test_a_message_relayed_live_is_delivered_for_good_and_the_senders_other_devices_hear(
    person: Callable[[str], Person],
) -> None:
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    phone, laptop = alice.connect(), alice.connect()
    b = bob.connect()

    ack = send(phone, room, "live")
    message_id = ack["message"]["id"]
    assert ack["delivered"] is True
    assert b.expect("chat_message")["message"]["id"] == message_id
    got = laptop.expect("receipt", where=receipt_for(room, message_id, "delivered_id"))
    assert got["read_id"] < message_id
    phone.quiet("receipt")  # the ack already told the sending socket
    # Persisted: bob going away changes nothing, a fresh page still says Delivered.
    b.close()
    assert tick_of(ticks(alice, room), message_id) == "Delivered"


def test_a_message_posted_over_http_to_someone_online_tells_every_sender_socket(
    person: Callable[[str], Person],
) -> None:
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    a = alice.connect()
    b = bob.connect()
    posted = alice.http.post(f"/api/rooms/{room}/messages", json={"client_id": "h", "text": "x"})
    message_id = posted.json()["id"]
    assert b.expect("chat_message")["message"]["id"] == message_id
    a.expect("receipt", where=receipt_for(room, message_id, "delivered_id"))
    assert tick_of(ticks(alice, room), message_id) == "Delivered"


def test_markers_only_move_forward_and_say_nothing_when_nothing_changed(
    person: Callable[[str], Person],
) -> None:
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    a = alice.connect()
    first = send(a, room, "one")["message"]["id"]
    second = send(a, room, "two")["message"]["id"]
    bob.http.get(f"/api/rooms/{room}/messages")
    a.expect("receipt", where=receipt_for(room, second, "delivered_id"))
    # An older page, the same page again, an old read marker: no news, no frame.
    bob.http.get(f"/api/rooms/{room}/messages", params={"before": second})
    bob.http.get("/api/rooms")
    a.quiet("receipt")
    bob.http.post(f"/api/rooms/{room}/read", json={"message_id": first}).raise_for_status()
    assert a.expect("receipt")["read_id"] == first
    bob.http.post(f"/api/rooms/{room}/read", json={"message_id": first}).raise_for_status()
    a.quiet("receipt")
    assert ticks(alice, room) == {"delivered_id": second, "read_id": first}
    assert (tick_of(ticks(alice, room), first), tick_of(ticks(alice, room), second)) == (
        "Read",
        "Delivered",
    )


def test_a_reply_means_the_other_person_read_what_came_before(
    person: Callable[[str], Person],
) -> None:
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    a = alice.connect()
    b = bob.connect()
    asked = send(a, room, "q", "lunch?")["message"]["id"]
    b.expect("chat_message")
    reply = send(b, room, "r", "yes")["message"]["id"]
    assert a.expect("chat_message")["message"]["id"] == reply
    # The reply itself is the news (pwa/js/chat.js reads it so); a reload agrees.
    assert ticks(alice, room)["read_id"] >= reply > asked


def test_receipts_cross_instances_through_redis(instances: Cluster) -> None:
    a_server, b_server = instances.servers
    alice, bob = instances.person("alice"), instances.person("bob")
    room = alice.open_room(bob)
    phone = alice.connect(server=a_server)
    laptop = alice.connect(server=b_server)
    ack = send(phone, room, "c1")
    message_id = ack["message"]["id"]
    assert ack["delivered"] is False

    # Bob's device catches up through instance a: alice's socket on b hears it through Redis.
    bob.http.get(f"/api/rooms/{room}/messages").raise_for_status()
    for sock in (phone, laptop):
        sock.expect("receipt", where=receipt_for(room, message_id, "delivered_id"))

    # Live: bob online on instance b, alice sends from instance a.
    b = bob.connect(server=b_server)
    ack = send(phone, room, "c2")
    assert ack["delivered"] is True
    assert b.expect("chat_message")["message"]["id"] == ack["message"]["id"]
    laptop.expect("receipt", where=receipt_for(room, ack["message"]["id"], "delivered_id"))
    bob.http.post(f"/api/rooms/{room}/read", json={"message_id": ack["message"]["id"]})
    for sock in (phone, laptop):
        sock.expect("receipt", where=receipt_for(room, ack["message"]["id"], "read_id"))
