"""Parley on a real PostgreSQL: a slow query never stalls signalling, ids past 32 bits work.

The suites in test_api, test_ws* and test_cluster run on PostgreSQL as well as SQLite; this
module covers what only a server database shows: a query that waits on the network must let
the gevent worker serve every other socket meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from harness.servers import (
    ParleyServer,
    PostgresServer,
    free_port,
    make_test_certs,
    migrate,
    parley_env,
    parley_server,
)
from harness.wsclient import FAKE_SDP, Person, Sock, call_id, offer

# Seconds a message with the text "sleep" holds its request in the database: long enough for a
# slow machine to relay the two candidates the test asks for meanwhile.
SLEEP = 5


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    with postgres.database() as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("pg")
    with parley_server(root, make_test_certs(root / "certs"), database) as running:
        yield running


def connect(database: str) -> psycopg.Connection:
    """Open the test's own connection to the server's database."""
    return psycopg.connect(database.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def start_call(alice: Person, bob: Person) -> tuple[Sock, Sock, str]:
    """alice calls bob and bob answers; return both sockets and the call id."""
    room = alice.open_room(bob)
    a, b = alice.connect(), bob.connect()
    cid = call_id()
    a.send(offer(room, bob, cid, media="audio"))
    b.expect("call_offer", timeout=10)
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer", timeout=10)
    return a, b, cid


def candidate(cid: str, n: int) -> dict[str, object]:
    line = f"candidate:{n} 1 udp 1 127.0.0.1 {9000 + n} typ host"
    return {
        "type": "ice_candidate",
        "call_id": cid,
        "candidate": {"candidate": line, "sdpMid": "0"},
    }


def test_candidates_keep_flowing_while_a_request_waits_on_the_database(
    person: Callable[[str], Person], database: str
) -> None:
    # A real request made slow by the database itself: the message insert runs pg_sleep.
    with connect(database) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION parley_test_sleep() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({SLEEP}); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE OR REPLACE TRIGGER parley_test_sleep BEFORE INSERT ON messages FOR EACH ROW "
            "WHEN (NEW.text = 'sleep') EXECUTE FUNCTION parley_test_sleep()"
        )
    alice, bob = person("alice"), person("bob")
    carol, dave = person("carol"), person("dave")
    a, b, cid = start_call(alice, bob)
    slow_room = carol.open_room(dave)
    slow: dict[str, object] = {}

    def post_slowly() -> None:
        began = time.monotonic()
        response = carol.http.post(
            f"/api/rooms/{slow_room}/messages", json={"client_id": "slow", "text": "sleep"}
        )
        slow.update(status=response.status_code, took=time.monotonic() - began)

    with connect(database) as watcher:

        def sleeping() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            ).fetchone()
            return bool(row and row[0])

        poster = threading.Thread(target=post_slowly)
        poster.start()
        deadline = time.monotonic() + 10
        while not sleeping():
            assert time.monotonic() < deadline, "the request never reached pg_sleep"
            time.sleep(0.01)
        # The request is now inside pg_sleep: relay candidates until it answers.
        during_sleep, latencies, n = 0, [], 0
        while poster.is_alive():
            n += 1
            sent = time.monotonic()
            a.send(candidate(cid, n))
            got = b.expect("ice_candidate", timeout=5)
            latencies.append(time.monotonic() - sent)
            assert got["candidate"]["candidate"].startswith(f"candidate:{n} ")
            if sleeping():  # relayed from end to end while the other request still waits
                during_sleep += 1
            time.sleep(0.05)
        poster.join()
    assert slow["status"] == 201
    assert float(slow["took"]) >= SLEEP  # type: ignore[arg-type]
    assert during_sleep >= 2, (
        f"{during_sleep} of {n} candidates were relayed while a request waited in pg_sleep; "
        f"the slowest took {max(latencies):.3f}s"
    )
    assert carol.messages(slow_room)[-1]["text"] == "sleep"


def test_ids_past_32_bits_on_a_migrated_database(
    person: Callable[[str], Person], database: str
) -> None:
    # The migrated schema's sequences go on past 2**31 (integer columns would refuse the row).
    with connect(database) as conn:
        for sequence in ("users_id_seq", "rooms_id_seq", "messages_id_seq"):
            conn.execute(f"SELECT setval('{sequence}', {2**31 + 7})")
    alice, bob = person("alice"), person("bob")
    assert alice.id > 2**31 and bob.id > 2**31
    room = alice.open_room(bob)
    assert room > 2**31
    a, b = alice.connect(), bob.connect()
    a.send({"type": "chat_message", "room_id": room, "client_id": "big", "text": "past 32 bits"})
    message = b.expect("chat_message")["message"]
    assert message["id"] > 2**31
    read = bob.http.post(f"/api/rooms/{room}/read", json={"message_id": message["id"]})
    assert read.json() == {"read_id": message["id"]}
    assert alice.http.get("/api/rooms").json()["rooms"][0]["last_message"]["id"] == message["id"]


def test_a_worker_refuses_to_boot_when_psycopg_would_block_it(
    tmp_path: Path, database: str
) -> None:
    # Preloading imports psycopg before gevent patches select: psycopg would wait in C.
    certs = make_test_certs(tmp_path / "certs")
    port_number = free_port()
    env = parley_env(database, certs, port_number)
    migrate(env)
    preloaded = ParleyServer(
        port=port_number, certs=certs, database_url=database, env=env, extra_args=["--preload"]
    )
    preloaded.log = tmp_path / "gunicorn.log"
    with pytest.raises(RuntimeError) as refused:
        preloaded.start()
    preloaded.stop()
    assert "psycopg was imported before gevent's monkey-patching" in str(refused.value)


def test_requests_survive_the_database_dropping_its_connections(
    person: Callable[[str], Person], database: str
) -> None:
    # As after a PostgreSQL restart or failover: every pooled connection is gone at once.
    alice, bob = person("alice"), person("bob")
    room = alice.open_room(bob)
    assert alice.http.get("/api/rooms").status_code == 200
    with connect(database) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for _ in range(20):  # more requests than the pool holds connections
        assert alice.http.get("/api/rooms").status_code == 200
    sent = alice.http.post(f"/api/rooms/{room}/messages", json={"client_id": "after", "text": "hi"})
    assert sent.status_code == 201
