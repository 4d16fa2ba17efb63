"""The room-members migration (a1c3e5f7b9d2) on a database made by the revision before it.

Direct rooms, their messages, each side's read and delivered markers and call records (with
reports) are written as the previous schema held them; after the upgrade the API shows the same
rooms, unread counts, ticks and call records, and groups can be made. The downgrade keeps the
direct rooms and their markers.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from argon2 import PasswordHasher
from flask.testing import FlaskClient

from backend.extensions import db
from backend.models import utcnow
from harness.databases import flask_db
from harness.flaskapp import ApiClient, build_app
from harness.servers import free_port, parley_env
from harness.wsclient import call_id

PREVIOUS_REVISION = "d8e2f4a6c1b9"  # the head before room members
PASSWORD = "correct horse"
REPORT = {"path": "direct", "transport": "udp", "rtt_ms": 42, "loss": 0.0, "reconnects": 0}


def _old_database(url: str, cid: str) -> None:
    """Fill a database at the previous revision: alice-bob and alice-carol, a call, markers."""
    now = utcnow()
    digest = PasswordHasher().hash(PASSWORD)
    rows: list[tuple[str, list[dict[str, Any]]]] = [
        (
            "INSERT INTO users (id, username, password_hash, created_at)"
            " VALUES (:id, :name, :hash, :now)",
            [
                {"id": i, "name": name, "hash": digest, "now": now}
                for i, name in ((1, "alice"), (2, "bob"), (3, "carol"))
            ],
        ),
        (
            "INSERT INTO rooms (id, user_a_id, user_b_id, read_a_id, read_b_id, delivered_a_id,"
            " delivered_b_id, created_at, last_activity_at)"
            " VALUES (:id, :a, :b, :ra, :rb, :da, :db, :now, :now)",
            [
                # alice read up to 1 and her devices got 2; bob read 3, his devices got 4.
                {"id": 1, "a": 1, "b": 2, "ra": 1, "rb": 3, "da": 2, "db": 4, "now": now},
                {"id": 2, "a": 1, "b": 3, "ra": 0, "rb": 5, "da": 0, "db": 5, "now": now},
            ],
        ),
        (
            "INSERT INTO calls (id, room_id, caller_id, callee_id, media, outcome, started_at,"
            " answered_at, ended_at, caller_report) VALUES"
            " (:id, 1, 1, 2, 'video', 'completed', :start, :start, :now, :report)",
            [
                {
                    "id": cid,
                    "start": now - timedelta(seconds=192),
                    "now": now,
                    "report": json.dumps({**REPORT, "duration_s": 192}),
                }
            ],
        ),
        (
            "INSERT INTO messages (id, room_id, sender_id, kind, text, client_id, call_id,"
            " created_at) VALUES (:id, :room, :sender, :kind, :text, :client, :call, :now)",
            [
                {"id": 1, "room": 1, "sender": 1, "kind": "text", "text": "hi bob"},
                {"id": 2, "room": 1, "sender": 2, "kind": "text", "text": "hi alice"},
                {"id": 3, "room": 1, "sender": 1, "kind": "text", "text": "call?"},
                {"id": 4, "room": 1, "sender": 1, "kind": "call", "text": "", "call": cid},
                {"id": 5, "room": 2, "sender": 3, "kind": "text", "text": "hello from carol"},
            ],
        ),
    ]
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        for statement, values in rows:
            for value in values:
                if ":client" in statement:
                    value.update(client=f"m{value['id']}", call=value.get("call"), now=now)
                conn.execute(sqlalchemy.text(statement), value)
        if engine.dialect.name == "postgresql":
            # Rows written with their ids, as the old app wrote them: move the sequences on.
            for table in ("users", "rooms", "messages"):
                conn.execute(
                    sqlalchemy.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))"
                    )
                )
    engine.dispose()


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Return the rows of a query, read straight from the database."""
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sqlalchemy.text(query)).all()
    engine.dispose()
    return [tuple(row) for row in found]


def _signed_in(app: Any, username: str) -> FlaskClient:
    app.test_client_class = ApiClient
    client: FlaskClient = app.test_client()
    response = client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return client


def test_upgrading_keeps_every_direct_room_its_messages_markers_and_calls(
    database_url: str, tmp_path: Path
) -> None:
    env = parley_env(database_url, tmp_path / "certs", free_port())
    flask_db(env, "upgrade", PREVIOUS_REVISION)
    cid = call_id()
    _old_database(database_url, cid)

    flask_db(env, "upgrade")

    # Each side's markers, now one row per member.
    members = "SELECT room_id, user_id, read_id, delivered_id FROM room_members ORDER BY 1, 2"
    assert _rows(database_url, members) == [(1, 1, 1, 2), (1, 2, 3, 4), (2, 1, 0, 0), (2, 3, 5, 5)]
    app = build_app(database_url)
    try:
        bob = _signed_in(app, "bob")
        page = bob.get("/api/rooms/1/messages").json
        assert [m["text"] for m in page["messages"] if m["kind"] == "text"] == [
            "hi bob",
            "hi alice",
            "call?",
        ]
        # Bob's ticks are alice's markers: she read 1, her devices got 2.
        assert (page["read_id"], page["delivered_id"]) == (1, 2)
        assert page["peer"] == {"id": 1, "username": "alice"}
        call = page["messages"][3]["call"]
        assert call["id"] == cid
        assert (call["outcome"], call["duration"], call["caller_id"]) == ("completed", 192, 1)
        assert call["reports"]["caller"]["rtt_ms"] == 42
        assert (call["group"], call["participants"]) == (False, None)

        alice = _signed_in(app, "alice")
        rooms = {room["id"]: room for room in alice.get("/api/rooms").json["rooms"]}
        assert set(rooms) == {1, 2}
        assert (rooms[1]["kind"], rooms[1]["name"], rooms[1]["unread"]) == ("direct", "bob", 1)
        assert (rooms[2]["name"], rooms[2]["unread"]) == ("carol", 1)
        assert rooms[2]["last_message"]["text"] == "hello from carol"
        ticks = alice.get("/api/rooms/1/messages").json
        assert (ticks["read_id"], ticks["delivered_id"]) == (3, 4)  # bob's markers
        # The same pair finds the same room; a group can now be made.
        assert alice.post("/api/rooms", json={"username": "bob"}).json["id"] == 1
        made = alice.post("/api/groups", json={"name": "All", "usernames": ["bob", "carol"]})
        assert made.status_code == 201, made.json
        assert [m["username"] for m in made.json["members"]] == ["alice", "bob", "carol"]
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

    # And back: the group goes (the old schema cannot hold it), the direct rooms stay.
    flask_db(env, "downgrade", PREVIOUS_REVISION)
    rooms = "SELECT id, user_a_id, user_b_id, read_a_id, read_b_id, delivered_b_id FROM rooms"
    assert sorted(_rows(database_url, rooms)) == [(1, 1, 2, 1, 3, 4), (2, 1, 3, 0, 5, 5)]
    assert _rows(database_url, "SELECT count(*) FROM messages") == [(5,)]
