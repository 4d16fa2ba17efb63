"""A signed-in user of a real Parley server: HTTPS API calls and signalling sockets."""

from __future__ import annotations

import itertools
import json
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import websocket

from harness.servers import ParleyServer

Frame = dict[str, Any]


class Sock:
    """One signalling socket; `recv` returns decoded frames, `expect` waits for one type."""

    def __init__(self, raw: websocket.WebSocket) -> None:
        self.raw = raw
        self.seen: list[Frame] = []
        self.welcome: Frame = {}
        self._early: list[Frame] = []  # frames that came before the welcome, read again later

    def send(self, frame: Frame | str) -> None:
        self.raw.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self, timeout: float = 10) -> Frame:
        """Return the next frame; raise TimeoutError when none comes in time.

        Reading is also what answers the server's pings: a socket left unread longer than the
        server's ping interval (WS_PING_INTERVAL) is closed as dead.
        """
        if self._early:
            return self._early.pop(0)
        self.raw.settimeout(timeout)
        try:
            text = self.raw.recv()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError(f"no frame in {timeout}s; seen {self.seen[-5:]}") from None
        if text == "":  # the server's close frame
            raise websocket.WebSocketConnectionClosedException(
                f"closed by the server; seen {self.seen[-5:]}"
            )
        frame: Frame = json.loads(text)
        self.seen.append(frame)
        return frame

    def expect(
        self, kind: str, timeout: float = 10, where: Callable[[Frame], bool] | None = None
    ) -> Frame:
        """Skip frames until one of type `kind` (matching `where`) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} in {timeout}s; seen {self.seen[-8:]}")
            frame = self.recv(left)
            if frame.get("type") == kind and (where is None or where(frame)):
                return frame

    def quiet(self, kind: str, seconds: float = 0.5) -> None:
        """Assert that no frame of type `kind` arrives within `seconds` on this open socket."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.recv(left)
            except TimeoutError:
                return
            except websocket.WebSocketConnectionClosedException as closed:
                # A closed socket hears nothing: that proves nothing, so it is a failure.
                raise AssertionError(f"socket closed while watching for {kind}: {closed}") from None
            assert frame.get("type") != kind, f"unexpected {frame}"

    def closed_with(self, timeout: float = 10) -> int | None:
        """Read until the server closes; return its close code."""
        self.raw.settimeout(timeout)
        try:
            while True:
                opcode, data = self.raw.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        except websocket.WebSocketConnectionClosedException:
            return None

    def close(self) -> None:
        try:
            self.raw.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            self.raw.shutdown()  # close() skips the socket when the server closed first


class Person:
    """A user of the server under test, signed in over HTTPS with a cookie jar of their own."""

    def __init__(self, server: ParleyServer, username: str, password: str = "correct horse"):
        self.server = server
        self.username = username
        self.http = httpx.Client(
            base_url=server.url,
            verify=server.ssl_context(),
            headers={"Origin": server.url},
            timeout=10,
            # Drop an idle connection well before the server does (gunicorn's keepalive, 5 s):
            # at the same 5 s, a request could go out on a connection the server is closing.
            limits=httpx.Limits(keepalive_expiry=2),
        )
        response = self.http.post(
            "/api/register", json={"username": username, "password": password}
        )
        if response.status_code == 409:
            response = self.http.post(
                "/api/login", json={"username": username, "password": password}
            )
        response.raise_for_status()
        self.id: int = response.json()["id"]
        self.sockets: list[Sock] = []

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())

    def connect(
        self,
        origin: str | None = None,
        welcome: bool = True,
        server: ParleyServer | None = None,
        sockopt: tuple[tuple[int, int, int], ...] = (),
    ) -> Sock:
        """Open a signalling socket (same origin unless told) and read its welcome.

        `server`: another server of the same cluster (same database and SECRET_KEY).
        `sockopt`: setsockopt arguments for the client's socket, set before it connects.
        """
        server = server or self.server
        raw = websocket.create_connection(
            server.ws_url,
            cookie=self.cookie_header(),
            origin=origin or server.url,
            sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(self.server.certs / "ca.crt")},
            sockopt=sockopt,
            timeout=10,
        )
        sock = Sock(raw)
        self.sockets.append(sock)
        if welcome:
            # With several workers, presence or chat may overtake the welcome (which the call
            # leader sends): keep them for the test to read.
            early = []
            while (frame := sock.recv(10))["type"] != "welcome":
                early.append(frame)
            sock.welcome = frame
            sock._early = early
        return sock

    def open_room(self, other: Person) -> int:
        response = self.http.post("/api/rooms", json={"username": other.username})
        response.raise_for_status()
        return int(response.json()["id"])

    def messages(self, room_id: int) -> list[Frame]:
        response = self.http.get(f"/api/rooms/{room_id}/messages", params={"limit": 200})
        response.raise_for_status()
        messages: list[Frame] = response.json()["messages"]
        return messages

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except Exception:
                pass
        self.http.close()


def call_id() -> str:
    return str(uuid.uuid4())


_names = itertools.count()


def username(prefix: str = "user") -> str:
    """Return a username no other in this test run has."""
    return f"{prefix}{next(_names)}"


def pair(person: Callable[[str], Person]) -> tuple[Person, Person, int]:
    """Make alice and bob with `person` and open their room; return both and the room id."""
    alice, bob = person("alice"), person("bob")
    return alice, bob, alice.open_room(bob)


FAKE_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def offer(room: int, to: Person, cid: str, media: str = "video") -> Frame:
    """Return the call_offer frame calling `to` in `room`."""
    return {
        "type": "call_offer",
        "call_id": cid,
        "room_id": room,
        "to": to.id,
        "media": media,
        "sdp": FAKE_SDP,
    }


def answered_call(caller: Sock, callee: Sock, room: int, to: Person) -> str:
    """Ring `to` from `caller` in `room` and answer on `callee`; return the call id."""
    cid = call_id()
    caller.send(offer(room, to, cid))
    callee.expect("call_offer")
    callee.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    caller.expect("call_answer")
    return cid
