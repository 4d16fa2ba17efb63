"""The HTTP side's signals reach the signalling service of the app that sent them, and no other.

Blinker signals are global to the process; tests (and any process hosting two apps) build several
apps. Two Parley apps run here in one process, one of them served on loopback with a real
socket open on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from flask import Flask
from werkzeug.serving import make_server

from harness.flaskapp import ApiClient, Auth, build_app
from harness.wsclient import Sock

DEADLINE = 30.0  # seconds: generous, for a slow shared machine


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    app = build_app(f"sqlite:///{tmp_path / 'served.db'}", SESSION_COOKIE_SECURE=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"127.0.0.1:{server.server_port}"
    finally:
        app.extensions["parley.signaling"].shutdown()
        server.shutdown()
        thread.join(DEADLINE)


def test_a_sign_out_on_another_app_leaves_this_apps_socket_open(
    served: tuple[Flask, str], tmp_path: Path
) -> None:
    app, host = served
    other = build_app(f"sqlite:///{tmp_path / 'other.db'}", SESSION_COOKIE_SECURE=False)
    # The same person, as user 1 of each app, signed in with one cookie (same secret key).
    client = ApiClient(app)
    assert Auth(client).register("alice").status_code == 201
    cookie = client.get_cookie("parley_session")
    assert cookie is not None
    assert Auth(ApiClient(other)).register("alice").status_code == 201
    raw = websocket.create_connection(
        f"ws://{host}/ws",
        origin=f"http://{host}",
        cookie=f"parley_session={cookie.value}",
        timeout=DEADLINE,
    )
    sock = Sock(raw)
    try:
        assert sock.expect("welcome", DEADLINE)["user"]["username"] == "alice"
        elsewhere = ApiClient(other)
        elsewhere.set_cookie("parley_session", cookie.value, domain="localhost")
        me = elsewhere.get("/api/me").json
        assert me is not None and me["username"] == "alice"  # signed in there too
        assert Auth(elsewhere).logout().status_code == 204
        sock.send({"type": "ping", "t": 7})
        assert sock.expect("pong", DEADLINE)["t"] == 7
        # The app that holds the socket does close it.
        assert Auth(client).logout().status_code == 204
        assert sock.closed_with(DEADLINE) == 1000
    finally:
        sock.close()
