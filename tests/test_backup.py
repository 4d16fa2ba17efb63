"""docs/deploy.md's backup and restore, run for real: pg_dump a live Parley, pg_restore, sign in."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from harness.servers import PostgresServer, _postgres_bin, make_test_certs, parley_server
from harness.wsclient import Person

_runs = itertools.count()


def pg(server: PostgresServer, program: str, *args: str) -> None:
    """Run a PostgreSQL client program as the superuser, as the guide's `sudo -u postgres` does."""
    connection = ["--host=127.0.0.1", f"--port={server.port}", "--username=postgres"]
    subprocess.run(
        [str(_postgres_bin() / program), *connection, *args], check=True, capture_output=True
    )


def test_a_dump_of_a_live_server_restores_accounts_rooms_and_messages(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    run = next(_runs)
    role, live, restored = f"parley_b{run}", f"parley_live{run}", f"parley_restored{run}"
    # As the guide sets it up: Parley's own role owns its database and the schema in it.
    postgres.execute(f"CREATE ROLE {role} LOGIN")
    postgres.execute(f"CREATE DATABASE {live} OWNER {role}")
    certs = make_test_certs(tmp_path / "certs")
    dump = tmp_path / "parley.dump"
    url = f"postgresql+psycopg://{role}@127.0.0.1:{postgres.port}"
    try:
        with parley_server(tmp_path / "live", certs, f"{url}/{live}") as server:
            alice, bob = Person(server, "alice"), Person(server, "bob")
            room = alice.open_room(bob)
            sent = alice.http.post(
                f"/api/rooms/{room}/messages", json={"client_id": "c1", "text": "keep this"}
            )
            assert sent.status_code == 201, sent.text
            # Nightly, with the server running: pg_dump reads one consistent snapshot.
            pg(postgres, "pg_dump", "--format=custom", f"--file={dump}", live)
            alice.close()
            bob.close()

        postgres.execute(f"CREATE DATABASE {restored} OWNER {role}")
        pg(
            postgres,
            "pg_restore",
            f"--dbname={restored}",
            "--no-owner",
            f"--role={role}",
            str(dump),
        )
        # parley_server runs `flask db upgrade` first, as the guide's restore does.
        with parley_server(tmp_path / "restored", certs, f"{url}/{restored}") as server:
            bob_again = Person(server, "bob")  # registering answers 409, so this signs in
            try:
                assert bob_again.id == bob.id
                messages = bob_again.messages(room)
                assert [(m["text"], m["sender"]["id"]) for m in messages] == [
                    ("keep this", alice.id)
                ]
                # The restored database goes on taking writes (sequences came back too).
                carol = Person(server, "carol")
                assert carol.id > bob.id
                carol.close()
            finally:
                bob_again.close()
    finally:
        for database in (live, restored):
            postgres.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        postgres.execute(f"DROP ROLE IF EXISTS {role}")
