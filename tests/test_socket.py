"""What signaling/socket.py relies on in simple-websocket, pinned with a real server and client.

simple-websocket does not document `Server.receive_bytes`, `Server.ws` and `Server.sock` as API;
Parley's socket uses all three. A route on a real server (werkzeug, threaded) runs Parley's
Socket; a real client (websocket-client) talks to it. If an upgrade changes what they mean,
these fail before the signalling tests do in stranger ways.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket
from flask import Flask
from flask_sock import Sock as FlaskSock
from werkzeug.serving import make_server

from backend.signaling.framing import FastReader
from backend.signaling.socket import RECEIVE_BYTES, Socket, WebSocket, tune
from harness.wsclient import Sock

DEADLINE = 30.0  # seconds: generous, for a slow shared machine
DEFAULT_READ = 4096  # simple-websocket's own receive_bytes


class Recorder:
    """Stand between simple-websocket's reader and the reader Parley installed; note each read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def receive_data(self, data: bytes | None) -> None:
        self.reads.append(len(data or b""))
        self.inner.receive_data(data)


@dataclass
class Seen:
    """What the server side saw, for the test to check."""

    installed: list[Any] = field(default_factory=list)
    recorders: list[Recorder] = field(default_factory=list)
    received: list[str | bytes] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    send_after_close: list[str] = field(default_factory=list)


def echo_app(seen: Seen) -> Flask:
    """Return an app whose /echo runs Parley's Socket: echo, or close when asked."""
    app = Flask(__name__)
    sock = FlaskSock(app)

    @sock.route("/echo")
    def echo(ws: WebSocket) -> None:
        tune(ws)
        seen.installed.append(ws.ws)
        recorder = Recorder(ws.ws)
        ws.ws = recorder
        seen.recorders.append(recorder)
        conn = Socket(ws, user_id=1, sid=None, node="test")
        conn.send("ready")  # the client sends only now: the reader Parley installed is in place
        for data in conn.frames():
            seen.received.append(data)
            if data == "close please":
                conn.close(4000, "asked to")
                conn.drain()
                try:
                    conn.send("too late")
                except ConnectionError as exc:
                    seen.send_after_close.append(str(exc))
                break
            conn.send(data if isinstance(data, str) else data.decode())
        seen.ended.set()

    return app


@pytest.fixture
def echo() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = make_server("127.0.0.1", 0, echo_app(seen), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}/echo", seen
    finally:
        server.shutdown()
        thread.join(DEADLINE)


@pytest.fixture
def connect() -> Iterator[Callable[[str], websocket.WebSocket]]:
    clients: list[websocket.WebSocket] = []

    def open_one(url: str) -> websocket.WebSocket:
        client = websocket.create_connection(url, timeout=DEADLINE)
        clients.append(client)
        assert client.recv() == "ready"
        return client

    yield open_one
    for client in clients:
        Sock(client).close()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_frames_written_to_the_raw_socket_reach_the_client_whole(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket], size: int
) -> None:
    url, _ = echo
    client = connect(url)
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    client.send(text)
    assert client.recv() == text


def test_the_reader_installed_after_the_upgrade_reads_every_frame(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    sent = [f"message {n}" for n in range(20)]
    for text in sent:
        client.send(text)
    assert [client.recv() for _ in sent] == sent
    assert isinstance(seen.installed[0], FastReader)
    # simple-websocket's reader looks `Server.ws` up on every read: all of it went through it.
    assert sum(seen.recorders[0].reads) >= sum(len(text) + 6 for text in sent)


def test_reads_take_up_to_receive_bytes_at_a_time(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    big = "y" * 50_000
    deadline = time.monotonic() + DEADLINE
    # The reader may already wait in a read of the old size when tune runs (threads here,
    # greenlets in gunicorn): the reads after it take up to RECEIVE_BYTES.
    reads = seen.recorders[0].reads
    while max(reads, default=0) <= DEFAULT_READ:
        assert time.monotonic() < deadline, f"{len(reads)} reads, none over {DEFAULT_READ} bytes"
        client.send(big)
        assert client.recv() == big
    assert max(reads) <= RECEIVE_BYTES


def test_a_close_reaches_the_client_with_its_code_and_ends_the_read_loop(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    client.send("close please")
    assert Sock(client).closed_with(DEADLINE) == 4000
    assert seen.ended.wait(DEADLINE)
    assert seen.send_after_close == ["socket closed"]


def test_the_read_loop_ends_when_the_client_goes(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    client.send("one")
    assert client.recv() == "one"
    assert not seen.ended.is_set()
    Sock(client).close()
    assert seen.ended.wait(DEADLINE)
    assert seen.received == ["one"]
