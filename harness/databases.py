"""The databases the API, socket and cluster suites run on, one fresh database per fixture."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.servers import BIN, ROOT, PostgresServer

# Embedded and server: every suite parametrised on these runs on both.
DATABASES = ["sqlite", "postgresql"]


@contextmanager
def fresh_database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """Yield the URL of an empty database of the kind the fixture's param names."""
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'parley.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database() as url:
        yield url


def flask_db(env: dict[str, str], *args: str) -> None:
    """Run `flask db ARGS` (Alembic through Flask-Migrate) with env, as a deployment does."""
    subprocess.run(
        [str(BIN / "flask"), "--app", "backend", "db", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
