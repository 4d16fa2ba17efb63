"""docs/openapi.yaml is true to the app: same routes, and a live server's answers fit it."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend import create_app
from backend.errors import API_NOT_FOUND
from harness.databases import DATABASES, fresh_database
from harness.servers import ParleyServer, make_test_certs, parley_server

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Enough to find what a change breaks, small enough for a 2-core CI (about a minute per database);
# OPENAPI_EXAMPLES=500 digs deeper.
EXAMPLES_PER_OPERATION = int(os.environ.get("OPENAPI_EXAMPLES", "25"))


def documented_routes() -> set[tuple[str, str]]:
    """Return (path, METHOD) for every operation in docs/openapi.yaml."""
    spec = yaml.safe_load(SPEC.read_text())
    verbs = {"get", "post", "put", "patch", "delete"}
    return {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in verbs
    }


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Return (path, METHOD) for every /api route Flask serves, in OpenAPI's path syntax."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'routes.db'}"})
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint == API_NOT_FOUND:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((path, method))
    return routes


def test_every_api_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    served, documented = app_routes(tmp_path), documented_routes()
    assert len(served) >= 13
    assert served - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - served == set(), "documented routes the app does not serve"


def post_json(server: ParleyServer, path: str, body: Any, cookie: str = "") -> tuple[Any, str]:
    """POST JSON as the same-origin page does; return the body and the session cookie."""
    headers = {"Content-Type": "application/json", "Origin": server.url}
    if cookie:
        headers["Cookie"] = cookie
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, context=server.ssl_context(), timeout=30) as response:
        set_cookies = response.headers.get_all("Set-Cookie") or []
        session = next(
            (c.split(";")[0] for c in set_cookies if c.startswith("parley_session=")), ""
        )
        return json.load(response), session or cookie


@pytest.fixture(scope="module", params=DATABASES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A live server with alice signed in, a room with bob and a message in it."""
    root = tmp_path_factory.mktemp("openapi")
    limits = {
        "AUTH_RATE_LIMIT": "100000 per minute",
        "LOGIN_ACCOUNT_LIMIT": "100000 per minute",
        "LOGIN_ADDRESS_LIMIT": "100000 per minute",
    }
    # PostgreSQL refuses what SQLite lets through (NUL in text, integers past 64 bits).
    with (
        fresh_database(request, root) as database_url,
        parley_server(root, make_test_certs(root / "certs"), database_url, **limits) as server,
    ):
        credentials = {"password": "correct horse"}
        post_json(server, "/api/register", {"username": "bob", **credentials})
        _, cookie = post_json(server, "/api/register", {"username": "alice", **credentials})
        room, _ = post_json(server, "/api/rooms", {"username": "bob"}, cookie)
        message = {"client_id": "first", "text": "hello"}
        post_json(server, f"/api/rooms/{room['id']}/messages", message, cookie)
        yield {"server": server, "cookie": cookie, "room": room["id"]}


@pytest.fixture(scope="module")
def api_schema(live: dict[str, Any]) -> Any:
    """Return docs/openapi.yaml aimed at the live server, as alice's same-origin page."""
    server: ParleyServer = live["server"]
    loaded = schemathesis.openapi.from_path(SPEC)
    loaded.config.update(
        base_url=server.url,
        headers={"Origin": server.url, "Cookie": live["cookie"]},
        tls_verify=str(server.certs / "ca.crt"),
    )
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@pytest.mark.timeout(600)  # one item runs every operation: bounded by the examples, not a clock
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_the_live_api_answers_every_request_as_documented(case: Any, live: dict[str, Any]) -> None:
    room_id = (case.path_parameters or {}).get("room_id")
    if isinstance(room_id, int) and room_id % 2 == 0:
        # Half the time alice's real room, so the paths past the 404 are reached.
        case.path_parameters["room_id"] = live["room"]
    response = case.call_and_validate(checks=CHECKS)
    # Every request went as alice's page would send it (the next test shows that gets past
    # 401 and 403), so the signed-in routes are fuzzed, not only their refusals.
    sent = response.request.headers
    assert sent["Origin"] == live["server"].url and live["cookie"] in sent["Cookie"]


def test_the_fuzzers_session_and_origin_reach_the_signed_in_routes(
    api_schema: Any, live: dict[str, Any]
) -> None:
    headers = dict(api_schema.config.headers)
    me = api_schema["/api/me"]["GET"].Case(headers=headers).call()
    assert me.status_code == 200 and me.json()["username"] == "alice"
    post = api_schema["/api/rooms/{room_id}/messages"]["POST"].Case(
        path_parameters={"room_id": live["room"]},
        body={"client_id": "probe", "text": "hi"},
        headers=headers,
    )
    assert post.call().status_code == 201


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/rooms/{room_id}/messages", "GET"), ("/api/turn/janus", "GET")],
)
def test_a_request_line_too_long_for_the_server_gets_the_documented_414(
    api_schema: Any, live: dict[str, Any], path: str, method: str
) -> None:
    # The fuzzer found it on CI: repeated query parameters past gunicorn's 4094-byte request
    # line are refused by gunicorn itself, before Parley, as a 414 HTML page.
    operation = api_schema[path][method]
    query = {"after" if "room_id" in path else "username": "9" * 5000}
    case = operation.Case(
        path_parameters={"room_id": live["room"]} if "room_id" in path else {},
        query=query,
        headers=dict(api_schema.config.headers),
    )
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 414
