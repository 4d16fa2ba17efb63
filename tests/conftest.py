"""Fixtures in layers: a Flask app on a fresh database, its test client, and a sign-up helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import create_app
from backend.extensions import db
from harness.servers import PostgresServer, postgres_server

ORIGIN = "https://localhost"


# The databases the API, socket and cluster suites run on: embedded and server.
DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session, started only when a test asks for it."""
    with postgres_server() as server:
        yield server


@contextmanager
def fresh_database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """Yield the URL of an empty database of the kind the fixture's param names."""
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'parley.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.database() as url:
        yield url


def build_app(database_url: str, **config: Any) -> Flask:
    """Build the app for tests on database_url, with its schema, overridden by config."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "AUTH_RATE_LIMIT": "1000 per minute",
            **config,
        }
    )
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(params=DATABASES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    with fresh_database(request, tmp_path) as database_url:
        app = build_app(database_url, CERTS_DIR=str(tmp_path / "certs"))
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


class ApiClient(FlaskClient):
    """A test client on https://localhost that sends the same-origin Origin header browsers send."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Origin", ORIGIN)
        kwargs["headers"] = {k: v for k, v in headers.items() if v is not None}
        kwargs.setdefault("base_url", ORIGIN)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = ApiClient
    return app.test_client()


@pytest.fixture
def make_client(app: Flask):  # type: ignore[no-untyped-def]
    """Return a factory of independent clients (separate cookie jars = separate people)."""
    app.test_client_class = ApiClient

    def factory() -> FlaskClient:
        return app.test_client()

    return factory


class Auth:
    """Sign people up and in through the real API."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def register(self, username: str = "alice", password: str = "correct horse") -> Any:
        return self._client.post("/api/register", json={"username": username, "password": password})

    def login(self, username: str = "alice", password: str = "correct horse") -> Any:
        return self._client.post("/api/login", json={"username": username, "password": password})

    def logout(self) -> Any:
        return self._client.post("/api/logout")


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)
