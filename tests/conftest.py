"""Fixtures in layers: an app on a fresh database, its test client, real servers and clusters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings

from backend.extensions import db
from harness.cluster import Cluster, cluster
from harness.databases import DATABASES, fresh_database
from harness.flaskapp import ApiClient, Auth, build_app
from harness.servers import (
    ParleyServer,
    PostgresServer,
    RedisServer,
    make_test_certs,
    parley_server,
    postgres_server,
    redis_server,
)
from harness.wsclient import Person, username

# Property tests count examples, never the clock: a loaded 2-core machine generates them slowly,
# and Hypothesis's "too slow" health check then fails a test whose property holds (seen in CI).
settings.register_profile("parley", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("parley")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session, started only when a test asks for it."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """A real server (gunicorn + gevent over HTTPS) for the socket suites, one per module."""
    root = tmp_path_factory.mktemp("ws")
    certs = make_test_certs(root / "certs")
    with (
        fresh_database(request, root) as database_url,
        parley_server(
            root,
            certs,
            database_url,
            # Long enough that a slow machine answers and resumes inside them.
            CALL_RING_TIMEOUT="10",
            CALL_GRACE_PERIOD="10",
            WS_MESSAGE_BURST="30",
        ) as running,
    ):
        yield running


@pytest.fixture
def person(server: ParleyServer) -> Iterator[Callable[[str], Person]]:
    """Return a maker of signed-up people on `server`, closed after the test."""
    made: list[Person] = []

    def make(prefix: str = "user") -> Person:
        someone = Person(server, username(prefix))
        made.append(someone)
        return someone

    yield make
    for someone in made:
        someone.close()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for tests that build its schema themselves (migrations)."""
    with fresh_database(request, tmp_path) as url:
        yield url


@pytest.fixture(params=DATABASES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    with fresh_database(request, tmp_path) as database_url:
        app = build_app(database_url, CERTS_DIR=str(tmp_path / "certs"))
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


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


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


@pytest.fixture(scope="module")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the cluster suites of a module."""
    with redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture(scope="module", params=DATABASES)
def instances(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_proc: RedisServer,
) -> Iterator[Cluster]:
    """Two gunicorn instances (one worker each) on two ports."""
    root = tmp_path_factory.mktemp("instances")
    with (
        fresh_database(request, root) as database,
        cluster(root, database, redis_proc, ["a", "b"]) as running,
    ):
        yield running


@pytest.fixture(scope="module", params=DATABASES)
def workers(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_proc: RedisServer,
) -> Iterator[Cluster]:
    """One gunicorn instance with two workers."""
    root = tmp_path_factory.mktemp("workers")
    with (
        fresh_database(request, root) as database,
        cluster(root, database, redis_proc, ["a"], WEB_CONCURRENCY="2") as running,
    ):
        yield running
