"""What signaling/socket.py relies on in simple-websocket, pinned with a real server and client.

Parley's socket keeps simple-websocket for the upgrade only; then it takes the raw socket and
wsproto's frame protocol and reads the socket itself in one thread (a greenlet under gunicorn):
no reader thread, no hand-off, one Pinger per process. It leans on simple-websocket's
`thread_class` and `event_class` options, `Server.ws`, `Server.sock`, `max_message_size` and
`connected`. A route on a real server (werkzeug, threaded) runs Parley's Socket; a real client
(websocket-client) talks to it. If an upgrade changes what they mean, these fail before the
signalling tests do in stranger ways. That gunicorn's request may end while the socket stays
open (`Signaling.adopt`) is what every test of tests/test_ws.py relies on.
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
from backend.signaling.pinger import Pinger
from backend.signaling.socket import (
    CLOSE_PING_TIMEOUT,
    RECEIVE_BYTES,
    Socket,
    WebSocket,
    server_options,
)
from harness.wsclient import Sock

DEADLINE = 30.0  # seconds: generous, for a slow shared machine
DEFAULT_READ = 4096  # simple-websocket's own receive_bytes
PING_INTERVAL = 0.5  # seconds: the test server's pinger
MAX_MESSAGE = 300_000  # bytes: the test server's largest message


class Recorder:
    """Stand between the socket's reads and the reader Parley installed; note each read."""

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
    threads_at_open: list[list[str]] = field(default_factory=list)


def echo_app(seen: Seen, pinger: Pinger) -> Flask:
    """Return an app whose /echo runs Parley's Socket: echo, or close when asked."""
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = server_options(MAX_MESSAGE)
    sock = FlaskSock(app)

    @sock.route("/echo")
    def echo(ws: WebSocket) -> None:
        seen.threads_at_open.append([thread.name for thread in threading.enumerate()])
        conn = Socket(ws, user_id=1, sid=None, node="test")
        assert not ws.connected  # taken over: flask-sock's close after the route sends nothing
        seen.installed.append(conn._protocol)
        recorder = Recorder(conn._protocol)
        conn._protocol = recorder  # type: ignore[assignment]
        seen.recorders.append(recorder)
        pinger.add(conn)
        conn.send("ready")
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
            if data == "close from elsewhere":  # as a sign-out elsewhere does: the loop reads on
                threading.Thread(target=conn.close, args=(4001, "signed out")).start()
                continue
            conn.send(data if isinstance(data, str) else data.decode())
        seen.ended.set()

    return app


@pytest.fixture
def echo() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = make_server("127.0.0.1", 0, echo_app(seen, Pinger(PING_INTERVAL)), threaded=True)
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
    # Every read went through the protocol the socket took: all of it reached the recorder.
    assert sum(seen.recorders[0].reads) >= sum(len(text) + 6 for text in sent)


def test_reads_take_up_to_receive_bytes_at_a_time(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    big = "y" * 50_000
    deadline = time.monotonic() + DEADLINE
    reads = seen.recorders[0].reads
    while max(reads, default=0) <= DEFAULT_READ:
        assert time.monotonic() < deadline, f"{len(reads)} reads, none over {DEFAULT_READ} bytes"
        client.send(big)
        assert client.recv() == big
    assert max(reads) <= RECEIVE_BYTES


def test_no_socket_gets_a_reader_thread_of_its_own(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    clients = [connect(url) for _ in range(3)]
    for n, client in enumerate(clients):
        client.send(f"hello {n}")
        assert client.recv() == f"hello {n}"
    names = [name for names in seen.threads_at_open for name in names]
    assert names, "the route saw no threads"
    assert not [name for name in names if "simple_websocket" in name]


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


def close_code(client: websocket.WebSocket) -> int | None:
    """Read frames as they are, answering nothing, until the server's close; return its code."""
    client.settimeout(DEADLINE)
    while True:
        frame = client.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None


def test_a_client_that_answers_pings_stays_open(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    client.settimeout(DEADLINE)
    pings = 0
    while pings < 4:  # websocket-client answers each ping as it reads it
        opcode, _ = client.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PING:
            pings += 1
    client.send("still here")
    assert client.recv() == "still here"
    assert not seen.ended.is_set()


def test_a_client_that_stops_answering_pings_is_closed_with_1008(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    # It reads nothing, so it answers no ping: the next round finds the last one unanswered.
    assert seen.ended.wait(DEADLINE), "the read loop of a silent client never ended"
    assert close_code(client) == CLOSE_PING_TIMEOUT


def test_a_client_that_never_replies_to_our_close_is_cut_off_and_its_loop_ends(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    client.send("close from elsewhere")
    # The client reads nothing and sends no close reply: the pinger ends the loop regardless.
    assert seen.ended.wait(DEADLINE), "the read loop waited for a close reply that never came"
    assert close_code(client) == 4001


@pytest.mark.parametrize("opcode", [websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY])
def test_a_message_in_fragments_arrives_whole(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket], opcode: int
) -> None:
    url, seen = echo
    client = connect(url)
    parts = ["é" * 10, "x" * 30_000, "😀 end"]
    for n, part in enumerate(parts):
        frame = websocket.ABNF.create_frame(
            part.encode(), opcode if n == 0 else websocket.ABNF.OPCODE_CONT, fin=n == len(parts) - 1
        )
        client.send_frame(frame)
    assert client.recv() == "".join(parts)
    whole = "".join(parts)
    assert seen.received == [whole if opcode == websocket.ABNF.OPCODE_TEXT else whole.encode()]


def test_a_message_over_the_limit_in_fragments_closes_with_1009(
    echo: tuple[str, Seen], connect: Callable[[str], websocket.WebSocket]
) -> None:
    url, seen = echo
    client = connect(url)
    part = b"z" * (MAX_MESSAGE // 2)
    first = websocket.ABNF.create_frame(part, websocket.ABNF.OPCODE_TEXT, fin=0)
    client.send_frame(first)
    client.send_frame(websocket.ABNF.create_frame(part, websocket.ABNF.OPCODE_CONT, fin=0))
    try:
        client.send_frame(websocket.ABNF.create_frame(b"!", websocket.ABNF.OPCODE_CONT, fin=1))
    except OSError:
        pass  # the server may have closed already
    assert close_code(client) == 1009
    assert seen.ended.wait(DEADLINE)
    assert seen.received == []
