"""Call report cards on a real server: each side's summary lands on the call record, once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy

from backend.extensions import db
from backend.models import Message, utcnow
from backend.signaling.protocol import CallReportSend
from backend.signaling.store import Store
from harness.databases import flask_db
from harness.flaskapp import build_app
from harness.servers import ParleyServer, free_port, parley_env
from harness.wsclient import Frame, Person, Sock, answered_call, call_id, offer, pair


def report(cid: str, **changes: Any) -> Frame:
    """Return a valid call_report frame for call `cid`, with `changes` applied."""
    frame: Frame = {
        "type": "call_report",
        "call_id": cid,
        "path": "direct",
        "transport": "udp",
        "rtt_ms": 42,
        "loss": 0.01,
        "reconnects": 1,
        "duration_s": 192,
    }
    frame.update(changes)
    return frame


def ended_call(alice: Person, bob: Person, room: int) -> tuple[Sock, Sock, str]:
    """Answer and end a call between alice and bob; return both sockets, once the record exists."""
    a, b = alice.connect(), bob.connect()
    cid = answered_call(a, b, room, bob)
    a.send({"type": "call_end", "call_id": cid})
    b.expect("call_end")
    for sock in (a, b):
        sock.expect("chat_message", where=lambda f: f["message"]["call"]["id"] == cid)
    return a, b, cid


def record_of(person: Person, room: int, cid: str) -> dict[str, Any]:
    """Return the call record of `cid` as GET messages shows it to `person`."""
    calls = [m["call"] for m in person.messages(room) if m["kind"] == "call"]
    found = [call for call in calls if call["id"] == cid]
    assert len(found) == 1, calls
    return found[0]


def refusal(sock: Sock, cid: str) -> Frame:
    """Return the next error about call `cid` on `sock`."""
    return sock.expect("error", where=lambda f: f.get("call_id") == cid)


def test_both_reports_are_stored_pushed_to_both_sides_and_shown_in_messages(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    a, b, cid = ended_call(alice, bob, room)
    a.send(report(cid))
    pushed = b.expect("call_report")
    assert pushed["call_id"] == cid
    assert pushed["message"]["call"]["reports"]["caller"] == {
        "path": "direct",
        "transport": "udp",
        "rtt_ms": 42,
        "loss": 0.01,
        "reconnects": 1,
        "duration_s": 192,
    }
    assert pushed["message"]["call"]["reports"]["callee"] is None
    assert a.expect("call_report")["message"] == pushed["message"]
    b.send(report(cid, path="relayed", transport="tls", rtt_ms=None, loss=0, reconnects=0))
    both = a.expect("call_report", where=lambda f: f["message"]["call"]["reports"]["callee"])
    assert both["message"]["id"] == pushed["message"]["id"]
    for someone in (alice, bob):
        reports = record_of(someone, room, cid)["reports"]
        assert reports["caller"]["path"] == "direct"
        assert reports["callee"] == {
            "path": "relayed",
            "transport": "tls",
            "rtt_ms": None,
            "loss": 0.0,
            "reconnects": 0,
            "duration_s": 192,
        }


def test_a_strangers_report_is_refused_and_changes_nothing(
    person: Callable[[str], Person],
) -> None:
    alice, bob, room = pair(person)
    mallory = person("mallory")
    m = mallory.connect()
    a, b, cid = ended_call(alice, bob, room)
    m.send(report(cid))
    refused = refusal(m, cid)
    assert refused["reason"] == "forbidden"
    assert refused["ref_type"] == "call_report"
    assert "only the people in a call" in refused["message"]
    a.quiet("call_report")
    assert record_of(alice, room, cid)["reports"] == {"caller": None, "callee": None}


def test_a_second_report_from_the_same_side_is_refused(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    a, b, cid = ended_call(alice, bob, room)
    a.send(report(cid, rtt_ms=10))
    a.expect("call_report")
    a.send(report(cid, rtt_ms=999))
    assert "already has your report" in refusal(a, cid)["message"]
    assert record_of(bob, room, cid)["reports"]["caller"]["rtt_ms"] == 10


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"loss": 1.5}, "loss"),
        ({"loss": -0.1}, "loss"),
        ({"loss": "0.1"}, "loss"),
        ({"rtt_ms": 60_001}, "rtt_ms"),
        ({"rtt_ms": 12.5}, "rtt_ms"),
        ({"reconnects": -1}, "reconnects"),
        ({"reconnects": 1001}, "reconnects"),
        ({"duration_s": 7 * 24 * 3600 + 1}, "duration_s"),
        ({"duration_s": True}, "duration_s"),
        ({"path": "carrier pigeon"}, "path"),
        ({"transport": "quic"}, "transport"),
        ({"call_id": "not-a-call"}, "call_id"),
    ],
)
def test_out_of_bounds_or_invalid_values_are_refused(
    person: Callable[[str], Person], changes: Frame, field: str
) -> None:
    alice, bob, room = pair(person)
    a, b, cid = ended_call(alice, bob, room)
    a.send(report(cid, **changes))
    refused = a.expect("error")
    assert refused["reason"] == "bad_message"
    assert refused["ref_type"] == "call_report"
    assert refused["message"].startswith(f"{field}:")
    assert record_of(alice, room, cid)["reports"]["caller"] is None


def test_an_oversized_report_is_refused(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    a, b, cid = ended_call(alice, bob, room)
    a.send(report(cid, transport="udp" * 20_000))
    assert a.expect("error")["reason"] == "bad_message"
    assert record_of(alice, room, cid)["reports"]["caller"] is None


def test_a_report_for_an_unknown_call_is_refused(person: Callable[[str], Person]) -> None:
    alice = person("alice")
    a = alice.connect()
    cid = call_id()
    a.send(report(cid))
    refused = refusal(a, cid)
    assert refused["reason"] == "not_found"
    assert refused["message"] == "no ended call with that id"


def test_a_report_for_a_call_never_answered_is_refused(person: Callable[[str], Person]) -> None:
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = call_id()
    a.send(offer(room, bob, cid))
    b.expect("call_offer")
    b.send({"type": "call_rejected", "call_id": cid, "reason": "declined"})
    a.expect("chat_message", where=lambda f: f["message"]["call"]["id"] == cid)
    a.send(report(cid))
    assert "only answered calls" in refusal(a, cid)["message"]


def test_the_other_sides_report_sent_at_call_end_waits_for_the_record(
    person: Callable[[str], Person],
) -> None:
    # Bob hears call_end before the server writes the record; his report, sent at once, still
    # lands (the server looks for the record again for a few seconds).
    alice, bob, room = pair(person)
    a, b = alice.connect(), bob.connect()
    cid = answered_call(a, b, room, bob)
    a.send({"type": "call_end", "call_id": cid})
    b.expect("call_end")
    b.send(report(cid))
    pushed = b.expect("call_report")
    assert pushed["message"]["call"]["reports"]["callee"]["rtt_ms"] == 42


def test_a_report_after_the_window_is_refused(
    person: Callable[[str], Person], server: ParleyServer
) -> None:
    alice, bob, room = pair(person)
    a, b, cid = ended_call(alice, bob, room)
    _age_call(server, cid, minutes=6)
    a.send(report(cid))
    assert "too late" in refusal(a, cid)["message"]


def _age_call(server: ParleyServer, cid: str, minutes: int) -> None:
    """Move the call's end `minutes` into the past, straight in the database."""
    url = server.database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "UPDATE calls SET ended_at = datetime(ended_at, ?) WHERE id = ?",
                (f"-{minutes} minutes", cid),
            )
        return
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            "UPDATE calls SET ended_at = ended_at - make_interval(mins => %s) WHERE id = %s",
            (minutes, cid),
        )


# --- the migration -------------------------------------------------------------------------

PREVIOUS_REVISION = "c5d7e9a1b2f3"  # the head before call reports


def test_upgrading_a_database_of_the_previous_revision_keeps_its_calls_and_takes_reports(
    database_url: str, tmp_path: Path
) -> None:
    env = parley_env(database_url, tmp_path / "certs", free_port())
    flask_db(env, "upgrade", PREVIOUS_REVISION)
    engine = sqlalchemy.create_engine(database_url)
    cid = call_id()
    now = utcnow()  # the call ended just now: inside the report window
    with engine.begin() as conn:
        for uid, name in ((1, "alice"), (2, "bob")):
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO users (id, username, password_hash, created_at)"
                    " VALUES (:id, :name, 'x', :now)"
                ),
                {"id": uid, "name": name, "now": now},
            )
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO rooms (id, user_a_id, user_b_id, read_a_id, read_b_id,"
                " delivered_a_id, delivered_b_id, created_at, last_activity_at)"
                " VALUES (1, 1, 2, 0, 0, 0, 0, :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO calls (id, room_id, caller_id, callee_id, media, outcome,"
                " started_at, answered_at, ended_at)"
                " VALUES (:id, 1, 1, 2, 'video', 'completed', :start, :start, :now)"
            ),
            {"id": cid, "start": now - timedelta(seconds=192), "now": now},
        )
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO messages (id, room_id, sender_id, kind, text, client_id, call_id,"
                " created_at) VALUES (1, 1, 1, 'call', '', :client, :id, :now)"
            ),
            {"client": f"call:{cid}", "id": cid, "now": now},
        )
    engine.dispose()

    flask_db(env, "upgrade")

    app = build_app(database_url)
    try:
        with app.app_context():
            old = db.session.get(Message, 1)
            assert old is not None
            assert old.to_public()["call"] == {
                "id": cid,
                "media": "video",
                "outcome": "completed",
                "duration": 192,
                "caller_id": 1,
                "reports": {"caller": None, "callee": None},
                "group": False,
                "participants": None,
            }
            db.session.remove()
        stored = Store(app).report(2, CallReportSend.model_validate(report(cid)))
        assert stored is not None
        message, caller, callee = stored
        assert (caller, callee) == (1, 2)
        assert message["call"]["reports"]["callee"]["duration_s"] == 192
        assert message["call"]["reports"]["caller"] is None
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    flask_db(env, "downgrade", PREVIOUS_REVISION)  # and the way back works too
