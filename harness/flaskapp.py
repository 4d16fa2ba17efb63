"""The Flask app on a test database, a same-origin test client, and sign-up through the API."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from backend import create_app
from backend.extensions import db

ORIGIN = "https://localhost"


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


class ApiClient(FlaskClient):
    """A test client on https://localhost that sends the same-origin Origin header browsers send."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Origin", ORIGIN)
        kwargs["headers"] = {k: v for k, v in headers.items() if v is not None}
        kwargs.setdefault("base_url", ORIGIN)
        return super().open(*args, **kwargs)


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
