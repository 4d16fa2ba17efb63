"""Group rooms on a real server (SQLite and PostgreSQL): create, add, rename, leave; chat in them.

Real WebSocket clients watch what each member's device would show: the room appearing and
changing (`room_updated`), system messages ("alice added dave"), chat, ticks and unread counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.cluster import Cluster
from harness.wsclient import Frame, Person, Sock

Summary = dict[str, Any]


def create_group(creator: Person, *others: Person, name: str = "Trip") -> Summary:
    """Create a group of creator and others through the API; return its summary."""
    body = {"name": name, "usernames": [other.username for other in others]}
    response = creator.http.post("/api/groups", json=body)
    assert response.status_code == 201, response.text
    summary: Summary = response.json()
    return summary


def users(*people: Person) -> list[dict[str, Any]]:
    """The members list the API shows for these people (in id order)."""
    return sorted(({"id": p.id, "username": p.username} for p in people), key=lambda u: u["id"])


def summary_of(who: Person, room: int) -> Summary | None:
    """The room as who's room list shows it, or None when it is not there."""
    response = who.http.get("/api/rooms")
    response.raise_for_status()
    found = [r for r in response.json()["rooms"] if r["id"] == room]
    return found[0] if found else None


def system_message(sock: Sock, room: int, text: str) -> Frame:
    """Wait for the system message `text` of `room` on a socket."""
    frame = sock.expect(
        "chat_message",
        where=lambda f: f["message"]["room_id"] == room and f["message"]["kind"] == "system",
    )
    assert frame["message"]["text"] == text
    return frame


def send(sock: Sock, room: int, client_id: str, text: str = "hi") -> Frame:
    """Send a chat message on a socket and return its ack."""
    sock.send({"type": "chat_message", "room_id": room, "client_id": client_id, "text": text})
    return sock.expect("chat_ack", where=lambda f: f["client_id"] == client_id)


def marks(who: Person, room: int) -> dict[str, int]:
    """How far the others got, as who's fresh page learns it."""
    response = who.http.get(f"/api/rooms/{room}/messages", params={"limit": 200})
    response.raise_for_status()
    body = response.json()
    return {"delivered_id": body["delivered_id"], "read_id": body["read_id"]}


# --- creating a group ------------------------------------------------------------------------


def test_a_group_is_created_shown_to_its_members_and_announced(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    b = bob.connect()

    group = create_group(alice, bob, carol, name="  Ski trip  ")
    room = group["id"]
    assert group["kind"] == "group"
    assert group["name"] == "Ski trip"
    assert group["members"] == users(alice, bob, carol)
    assert group["peer"] is None
    assert group["unread"] == 0  # the creator's own announcement
    assert group["last_message"]["kind"] == "system"
    assert group["last_message"]["text"] == f"{alice.username} created the group"

    updated = b.expect("room_updated")
    assert updated["room"] == {
        "id": room,
        "kind": "group",
        "name": "Ski trip",
        "members": users(alice, bob, carol),
    }
    system_message(b, room, f"{alice.username} created the group")
    seen_by_carol = summary_of(carol, room)
    assert seen_by_carol is not None
    assert (seen_by_carol["name"], seen_by_carol["unread"]) == ("Ski trip", 1)


def test_a_direct_room_still_names_its_peer(person: Callable[[str], Person]) -> None:
    alice, bob = person("alice"), person("bob")
    opened = alice.http.post("/api/rooms", json={"username": bob.username})
    assert opened.status_code == 201
    room = opened.json()
    assert (room["kind"], room["name"], room["peer"]) == ("direct", bob.username, users(bob)[0])
    assert room["members"] == users(alice, bob)
    again = bob.http.post("/api/rooms", json={"username": alice.username})
    assert again.status_code == 200 and again.json()["id"] == room["id"]
    page = alice.http.get(f"/api/rooms/{room['id']}/messages").json()
    assert page["peer"] == users(bob)[0]
    assert page["members"] == users(alice, bob)


REFUSED_GROUPS: dict[str, tuple[Callable[[list[str], str], dict[str, Any]], str]] = {
    "an unknown member": (
        lambda o, me: {"name": "G", "usernames": [o[0], "nobody-here"]},
        "no user",
    ),
    "a member named twice": (lambda o, me: {"name": "G", "usernames": [o[0], o[0]]}, "twice"),
    "the creator among the members": (lambda o, me: {"name": "G", "usernames": [o[0], me]}, "you"),
    "no members": (lambda o, me: {"name": "G", "usernames": []}, "1 to 15"),
    "16 others": (
        lambda o, me: {"name": "G", "usernames": [f"x{i}" for i in range(16)]},
        "1 to 15",
    ),
    "no member list": (lambda o, me: {"name": "G"}, "usernames"),
    "a blank name": (lambda o, me: {"name": "   ", "usernames": o}, "name"),
    "no name": (lambda o, me: {"usernames": o}, "name"),
    "a 65-character name": (lambda o, me: {"name": "n" * 65, "usernames": o}, "64"),
}


@pytest.mark.parametrize("case", REFUSED_GROUPS, ids=list(REFUSED_GROUPS))
def test_a_bad_group_is_refused_with_400_and_a_reason(
    person: Callable[[str], Person], case: str
) -> None:
    alice, bob = person("alice"), person("bob")
    make_body, reason = REFUSED_GROUPS[case]
    response = alice.http.post("/api/groups", json=make_body([bob.username], alice.username))
    assert response.status_code == 400
    assert reason in response.json()["error"]
    rooms = alice.http.get("/api/rooms").json()["rooms"]
    assert [r for r in rooms if r["kind"] == "group"] == []


def test_a_64_character_name_is_fine(person: Callable[[str], Person]) -> None:
    alice, bob = person("alice"), person("bob")
    assert create_group(alice, bob, name="n" * 64)["name"] == "n" * 64


# --- changing a group ------------------------------------------------------------------------


def test_a_member_adds_someone_who_sees_the_room_from_then_on(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol, dave = person("alice"), person("bob"), person("carol"), person("dave")
    room = create_group(alice, bob, carol)["id"]
    b, d = bob.connect(), dave.connect()
    assert dave.http.get(f"/api/rooms/{room}/messages").status_code == 404  # not yet

    added = bob.http.post(f"/api/rooms/{room}/members", json={"username": dave.username})
    assert added.status_code == 200
    assert added.json()["members"] == users(alice, bob, carol, dave)

    for sock in (b, d):
        assert sock.expect("room_updated")["room"]["members"] == users(alice, bob, carol, dave)
        system_message(sock, room, f"{bob.username} added {dave.username}")
    seen = summary_of(dave, room)
    assert seen is not None and seen["unread"] == 1  # the news of their arrival, not the past
    assert [m["kind"] for m in dave.messages(room)] == ["system", "system"]
    ack = send(b, room, "welcome", "hello dave")
    assert d.expect("chat_message")["message"]["id"] == ack["message"]["id"]


def test_adding_is_refused_for_someone_already_in_unknown_people_direct_rooms_and_strangers(
    person: Callable[[str], Person],
) -> None:
    alice, bob, stranger = person("alice"), person("bob"), person("eve")
    room = create_group(alice, bob)["id"]
    direct = alice.open_room(bob)

    def add(who: Person, where: int, username: str) -> int:
        response = who.http.post(f"/api/rooms/{where}/members", json={"username": username})
        return response.status_code

    assert add(alice, room, bob.username) == 409
    assert add(alice, room, "nobody-here") == 400
    assert add(alice, direct, stranger.username) == 400
    assert add(stranger, room, stranger.username) == 404
    summary = summary_of(alice, room)
    assert summary is not None and summary["members"] == users(alice, bob)


def test_renaming_a_group_is_shown_to_every_member(person: Callable[[str], Person]) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    room = create_group(alice, bob, carol)["id"]
    c = carol.connect()

    renamed = bob.http.patch(f"/api/rooms/{room}", json={"name": "Ski trip"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ski trip"
    assert c.expect("room_updated")["room"]["name"] == "Ski trip"
    system_message(c, room, f"{bob.username} renamed the group to “Ski trip”")
    assert bob.http.patch(f"/api/rooms/{room}", json={"name": " "}).status_code == 400
    assert bob.http.patch(f"/api/rooms/{room}", json={"name": "n" * 65}).status_code == 400
    direct = alice.open_room(bob)
    assert alice.http.patch(f"/api/rooms/{direct}", json={"name": "Us"}).status_code == 400
    summary = summary_of(carol, room)
    assert summary is not None and summary["name"] == "Ski trip"


def test_someone_who_leaves_becomes_a_stranger_to_the_group(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    room = create_group(alice, bob, carol)["id"]
    a, c = alice.connect(), carol.connect()

    assert carol.http.delete(f"/api/rooms/{room}/members/me").status_code == 204
    assert c.expect("room_removed") == {"type": "room_removed", "room_id": room}
    assert a.expect("room_updated")["room"]["members"] == users(alice, bob)
    system_message(a, room, f"{carol.username} left")

    # Exactly like a stranger: 404 everywhere, nothing new on the socket, gone from the list.
    assert carol.http.get(f"/api/rooms/{room}/messages").status_code == 404
    posted = carol.http.post(f"/api/rooms/{room}/messages", json={"client_id": "x", "text": "x"})
    assert posted.status_code == 404
    assert carol.http.delete(f"/api/rooms/{room}/members/me").status_code == 404
    assert summary_of(carol, room) is None
    c.send({"type": "chat_message", "room_id": room, "client_id": "late", "text": "hello?"})
    assert c.expect("error")["reason"] == "not_found"
    send(a, room, "after", "carol is gone")
    c.quiet("chat_message")
    direct = alice.open_room(bob)
    assert alice.http.delete(f"/api/rooms/{direct}/members/me").status_code == 400


# --- chat in a group -------------------------------------------------------------------------


def test_chat_in_a_group_of_three_reaches_everyone_with_delivered_unread_and_read_by_all(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    room = create_group(alice, bob, carol)["id"]
    a = alice.connect()

    # Nobody else online: sent, not delivered.
    first = send(a, room, "g1", "anyone?")
    assert first["delivered"] is False
    b = bob.connect()
    second = send(a, room, "g2", "bob?")
    message_id = second["message"]["id"]
    assert second["delivered"] is True  # reached bob: "delivered to at least one other member"
    assert b.expect("chat_message", where=lambda f: f["message"]["id"] == message_id)
    # The ticks wait for the lowest member: carol's device has seen nothing yet.
    a.quiet("receipt")
    assert marks(alice, room)["delivered_id"] < message_id
    carol_view = summary_of(carol, room)
    assert carol_view is not None and carol_view["unread"] == 3  # created, g1, g2
    a.expect("receipt", where=lambda f: f["delivered_id"] >= message_id)  # carol's list reached her

    # Read by everyone only once the last of them read it.
    bob.http.post(f"/api/rooms/{room}/read", json={"message_id": message_id}).raise_for_status()
    assert marks(alice, room)["read_id"] < message_id
    carol.http.post(f"/api/rooms/{room}/read", json={"message_id": message_id}).raise_for_status()
    read = a.expect("receipt", where=lambda f: f["read_id"] >= message_id)
    assert read["room_id"] == room
    assert marks(alice, room) == {"delivered_id": message_id, "read_id": message_id}
    carol_view = summary_of(carol, room)
    assert carol_view is not None and carol_view["unread"] == 0


def test_a_message_posted_over_http_in_a_group_reaches_every_members_sockets(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    room = create_group(alice, bob, carol)["id"]
    b, c = bob.connect(), carol.connect()
    posted = alice.http.post(f"/api/rooms/{room}/messages", json={"client_id": "h", "text": "x"})
    assert posted.status_code == 201
    for sock in (b, c):
        assert sock.expect("chat_message")["message"]["id"] == posted.json()["id"]


# --- presence --------------------------------------------------------------------------------


def test_group_members_see_each_others_presence_until_they_no_longer_share_a_room(
    person: Callable[[str], Person],
) -> None:
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    b, c = bob.connect(), carol.connect()
    room = create_group(alice, bob, carol)["id"]
    # Bob and carol share no other room: the group links them at once.
    assert c.expect("presence", where=lambda f: f["user_id"] == bob.id)["online"] is True
    assert b.expect("presence", where=lambda f: f["user_id"] == carol.id)["online"] is True
    a = alice.connect()
    assert sorted(a.welcome["online"]) == sorted([bob.id, carol.id])
    b.close()
    for sock in (a, c):
        assert sock.expect("presence", where=lambda f: f["user_id"] == bob.id)["online"] is False

    carol.http.delete(f"/api/rooms/{room}/members/me").raise_for_status()
    c.expect("room_removed")
    bob.connect()
    assert a.expect("presence", where=lambda f: f["user_id"] == bob.id)["online"] is True
    c.quiet("presence")  # carol shares no room with bob any more


# --- across a cluster --------------------------------------------------------------------------


def test_a_group_across_two_instances_chats_and_forgets_a_leaver_through_redis(
    instances: Cluster,
) -> None:
    one, two = instances.servers
    alice, bob, carol = (instances.person(name) for name in ("alice", "bob", "carol"))
    a, b = alice.connect(server=one), bob.connect(server=two)
    c = carol.connect(server=two)
    room = create_group(alice, bob, carol)["id"]
    for sock in (b, c):
        assert sock.expect("room_updated")["room"]["id"] == room
    assert c.expect("presence", where=lambda f: f["user_id"] == bob.id)["online"] is True

    ack = send(a, room, "x1", "over there")
    assert ack["delivered"] is True
    for sock in (b, c):
        assert sock.expect("chat_message", where=lambda f: f["message"]["kind"] == "text")

    carol.http.delete(f"/api/rooms/{room}/members/me").raise_for_status()
    c.expect("room_removed")
    b.close()
    bob.connect(server=one)
    c.quiet("presence")  # carol no longer hears of bob, on any instance
    send(a, room, "x2", "after carol left")
    c.quiet("chat_message")
