"""The `/ws` route: authenticate the upgrade, run each socket's read loop, hand messages on.

`Signaling` is the app's one signalling service: it owns the Hub (who is connected where) and the
CallRegistry (live calls), adapts the database to what they need, and is what the HTTP side
(new messages, new rooms, sign-out) and gunicorn's shutdown talk to.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, g, request, session
from flask_login import current_user
from gevent import monkey
from gevent.threadpool import ThreadPool
from simple_websocket import ConnectionClosed, Server
from sqlalchemy import select

from .. import chat
from ..errors import error_response
from ..extensions import db, sock
from ..models import Call, Message, Room, User, utcnow
from ..security import origin_allowed
from . import protocol
from .cluster import CallRouter, LeaderCalls, LocalCalls
from .framing import FastReader, text_frame
from .hub import Bus, Hub, InMemoryBus
from .protocol import ChatAck, ChatDeliver, ChatSend, Ping, Pong, ProtocolError, Receipt
from .ratelimit import TokenBucket
from .redisbus import RedisBus
from .registry import CallRecord, CallRegistry, ThreadScheduler

log = logging.getLogger("parley.signaling")

bp = Blueprint("signaling", __name__)

# WebSocket close codes (RFC 6455) Parley uses; docs/protocol.md lists them.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008

CALLS_FILE = "live_calls.json"
HANDOVER_WINDOW = 120  # seconds a restart may take and still take over the live calls
CHAT_ERROR_REASONS = {400: "bad_message", 404: "not_found", 409: "forbidden"}
RECEIVE_BYTES = 65536  # at least a TLS record (16 KiB); see ws_route
SWITCH_INTERVAL = 0.0005  # seconds; see _sqlite_thread

_T = TypeVar("_T")


class Socket:
    """One open WebSocket of one signed-in session, safe to send to from any greenlet."""

    def __init__(self, ws: Server, user_id: int, sid: str | None, node: str) -> None:
        self.id = f"{node}.{uuid.uuid4().hex}"
        self.user_id = user_id
        self.sid = sid
        self.ws = ws
        # Fan-out sends come from other sockets' greenlets and timers: one frame at a time, and
        # sendall, because a partial TLS write interleaved with another frame corrupts both.
        self._lock = threading.Lock()

    def send(self, text: str) -> None:
        """Send one text frame; raise ConnectionError when the socket is closed."""
        frame = text_frame(text)
        with self._lock:
            if not self.ws.connected:
                raise ConnectionError("socket closed")
            sock = self.ws.sock
            sent = sock.send(frame)  # nearly always all of it: skip sendall's layers
            if sent < len(frame):
                sock.sendall(memoryview(frame)[sent:])

    def close(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code; the read loop then ends."""
        with self._lock:
            if self.ws.connected:
                self.ws.close(code, reason)

    def drain(self, seconds: float = 1.0) -> None:
        """Read and drop what the client still sends after our close, for up to `seconds`.

        Closing a TCP socket with unread data sends a reset, and the reset can destroy our close
        frame before the client reads it; draining lets the client see the close code.
        """
        raw = self.ws.sock
        deadline = time.monotonic() + seconds
        try:
            raw.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    if not raw.recv(65536):
                        return
                except TimeoutError:
                    return
        except Exception:  # the socket's own reader may hold it: then it drains for us
            return


class DbCallStore:
    """The CallStore the registry uses, on short database sessions of this app."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def shared_room(self, room_id: int, a: int, b: int) -> bool:
        """Tell whether room_id is the room of users a and b."""
        with self.app.app_context():
            room = db.session.get(Room, room_id)
            return room is not None and room.has_member(a) and room.has_member(b) and a != b

    def user(self, user_id: int) -> protocol.User | None:
        """Return a user as others see them, or None."""
        with self.app.app_context():
            user = db.session.get(User, user_id)
            return None if user is None else protocol.User(id=user.id, username=user.username)

    def record(self, record: CallRecord) -> dict[str, Any] | None:
        """Store the call and its timeline message; return the message as the API shows it."""
        with self.app.app_context():
            if db.session.get(Call, record.call_id) is not None:
                return None
            call = Call(
                id=record.call_id,
                room_id=record.room_id,
                caller_id=record.caller_id,
                callee_id=record.callee_id,
                media=record.media,
                outcome=record.outcome,
                started_at=record.started_at,
                answered_at=record.answered_at,
                ended_at=record.ended_at,
            )
            message = Message(
                room_id=record.room_id,
                sender_id=record.caller_id,
                kind="call",
                text="",
                client_id=f"call:{record.call_id}",
                call=call,
            )
            db.session.add_all([call, message])
            room = db.session.get(Room, record.room_id)
            if room is not None:
                room.last_activity_at = utcnow()
            db.session.commit()
            return message.to_public()


class Signaling:
    """The app's signalling service: sockets, presence, chat and calls.

    It starts on first use (or from gunicorn's post_worker_init), so a `flask db upgrade` run
    with REDIS_URL set never joins the cluster.
    """

    def __init__(self, app: Flask, bus: Bus | None = None) -> None:
        self.app = app
        self.store = DbCallStore(app)
        self._bus = bus
        self._echo_id: int | None = None
        self._sockets: dict[str, Socket] = {}
        self._lock = threading.Lock()
        self._started = False
        self._db_thread: ThreadPool | None = None

    def start(self) -> None:
        """Connect the bus (Redis when REDIS_URL is set) and take up the calls."""
        if self._started:  # every socket and hook calls this: no lock once started
            return
        with self._lock:
            if self._started:
                return
            config = self.app.config
            bus = self._bus
            if bus is None and config["REDIS_URL"]:
                bus = RedisBus(
                    config["REDIS_URL"],
                    prefix=config["REDIS_PREFIX"],
                    heartbeat=config["CLUSTER_HEARTBEAT"],
                    dead_after=3 * config["CLUSTER_HEARTBEAT"],
                )
            self.bus: Bus = bus or InMemoryBus()
            self.hub = Hub(self._peers_of, self.bus)
            self.calls = CallRegistry(
                self.hub,
                self.store,
                ThreadScheduler(),
                ring_timeout=float(config["CALL_RING_TIMEOUT"]),
                grace_period=float(config["CALL_GRACE_PERIOD"]),
                ring_offline=self._ring_offline,
                takes_many=self._is_echo_bot,
            )
            self._db_thread = _sqlite_thread(str(config["SQLALCHEMY_DATABASE_URI"]))
            self.router: CallRouter
            if isinstance(self.bus, RedisBus):
                self.router = LeaderCalls(self.hub, self.calls, self.bus)
            else:
                self.router = LocalCalls(self.hub, self.calls)
                self._restore_calls()
            self._started = True

    # --- hooks the HTTP side and the server call ---------------------------------------------

    def message_posted(self, a: int, b: int, message: dict[str, Any]) -> None:
        """Deliver a message stored through the HTTP API to every socket of both members."""
        self.start()
        frame = protocol.dump(ChatDeliver(message=message))
        sender = message["sender"]["id"]
        peer = b if sender == a else a
        reached = self.hub.deliver(peer, frame) > 0
        self.hub.deliver(sender, frame)
        if reached:
            self._delivered(message["room_id"], peer, message["id"])

    def receipt_moved(self, user_id: int, receipt: dict[str, Any]) -> None:
        """Tell every socket of user_id how far the others in a room got (`receipt`)."""
        self.start()
        self.hub.deliver(user_id, Receipt.model_validate(receipt))

    def room_created(self, a: int, b: int) -> None:
        """Let two people who now share a room see each other's presence."""
        self.start()
        self.hub.link(a, b)

    def signed_out(self, user_id: int, sid: str | None) -> None:
        """Close the sockets of a session that signed out."""
        self.start()
        self.hub.close_session(user_id, sid, CLOSE_NORMAL, "signed out")

    def shutdown(self) -> None:
        """Hand live calls to the next server, then close every socket with 1001."""
        if not self._started:
            return
        if isinstance(self.router, LocalCalls):
            self._save_calls()
        self.router.shutdown()
        with self._lock:
            sockets = list(self._sockets.values())
        for conn in sockets:
            try:
                conn.close(CLOSE_GOING_AWAY, "server restarting")
            except Exception:
                log.debug("closing socket %s at shutdown failed", conn.id, exc_info=True)
        if isinstance(self.bus, RedisBus):
            self.bus.close()

    # --- one socket ----------------------------------------------------------------------------

    def serve(self, ws: Server, user: protocol.User, sid: str | None) -> None:
        """Run one socket from welcome to close."""
        self.start()
        conn = Socket(ws, user.id, sid, self.bus.node)
        config = self.app.config
        bucket = TokenBucket(config["WS_MESSAGE_RATE"], config["WS_MESSAGE_BURST"])
        with self._lock:
            self._sockets[conn.id] = conn
        try:
            self.hub.add(conn)
            self.router.opened(conn, user)
            while True:
                data = ws.receive()
                if data is None:
                    continue
                verdict = bucket.take()
                if verdict == "abusive":
                    log.warning("closing socket %s of user %s: message flood", conn.id, user.id)
                    conn.close(CLOSE_POLICY, "too many messages")
                    conn.drain()
                    break
                if verdict == "throttled":
                    self.hub.send(conn, protocol.error("rate_limited", "slow down"))
                    continue
                self._handle(conn, data)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._sockets.pop(conn.id, None)
            self.hub.remove(conn)
            self.router.closed(conn)

    def _handle(self, conn: Socket, data: str | bytes) -> None:
        try:
            message = protocol.parse(data)
        except ProtocolError as exc:
            self.hub.send(conn, protocol.error(exc.reason, exc.message, exc.ref_type))
            return
        except Exception:  # parse must only raise ProtocolError; if not, answer, don't die
            log.exception("parsing a frame from user %s failed", conn.user_id)
            self.hub.send(conn, protocol.error("internal", "the server failed on that message"))
            return
        try:
            if isinstance(message, Ping):
                self.hub.send(conn, Pong(t=message.t))
            elif isinstance(message, ChatSend):
                self._chat(conn, message)
            else:
                self.router.handle(conn, message, data)
        except Exception:
            # A bug in one message must not end the socket or the worker.
            log.exception("handling %s from user %s failed", message.type, conn.user_id)
            self.hub.send(conn, protocol.error("internal", "the server failed on that message"))
        finally:
            # Most frames (candidates, pings) never open a database session: skip the teardown.
            if db.session.registry.has():
                db.session.remove()

    def _chat(self, conn: Socket, message: ChatSend) -> None:
        # The socket's own greenlet waits for the store, so its frames stay in order and each
        # chat message is acked once; other sockets' frames are relayed meanwhile.
        try:
            payload, peer, created = self._off_loop(self._store_chat, conn.user_id, message)
        except chat.ChatError as exc:
            reason = CHAT_ERROR_REASONS.get(exc.status, "bad_message")
            self.hub.send(conn, protocol.error(reason, exc.message, message.type))
            return
        frame = protocol.dump(ChatDeliver(message=payload))
        if created:
            delivered = self.hub.deliver(peer, frame) > 0
            self.hub.deliver(conn.user_id, frame, exclude=conn.id)
        else:
            # A resend of a stored message: it went out when it was first stored.
            delivered = self.hub.is_online(peer)
        self.hub.send(
            conn, ChatAck(client_id=message.client_id, message=payload, delivered=delivered)
        )
        if created and delivered:
            # After the ack, which must not wait for this write: the ack tells this socket, a
            # receipt the sender's others, and the marker every page loaded from now on.
            self._delivered(payload["room_id"], peer, payload["id"], exclude=conn.id)

    def _store_chat(self, user_id: int, message: ChatSend) -> tuple[dict[str, Any], int, bool]:
        """Store a chat message once; return it as sent, the room peer's id, and whether new."""
        with self.app.app_context():
            try:
                # The message and room were just written by this session: reading them back
                # after the commit (two SELECTs) cost a fifth of a chat message's CPU.
                db.session().expire_on_commit = False
                new = chat.validate_new_message(
                    {"client_id": message.client_id, "text": message.text}
                )
                room, sender = chat.room_with_sender(user_id, message.room_id)
                stored, created = chat.post_message(user_id, room, new, sender)
                return stored.to_public(), chat.peer_id_of(room, user_id), created
            finally:
                db.session.remove()

    def _delivered(
        self, room_id: int, user_id: int, message_id: int, exclude: str | None = None
    ) -> None:
        """Persist that a message reached a device of user_id; send its sender a `receipt`."""
        moved = self._off_loop(self._mark_delivered, room_id, user_id, message_id)
        if moved is not None:
            sender, receipt = moved
            self.hub.deliver(sender, Receipt.model_validate(receipt), exclude=exclude)

    def _mark_delivered(
        self, room_id: int, user_id: int, message_id: int
    ) -> tuple[int, dict[str, Any]] | None:
        """Move user_id's delivered marker; return (the other person, their receipt) if it moved."""
        with self.app.app_context():
            try:
                db.session().expire_on_commit = False  # the receipt reads the room after it
                room = db.session.get(Room, room_id)
                if room is None or not chat.mark_delivered(room, user_id, message_id):
                    return None
                sender = chat.peer_id_of(room, user_id)
                return sender, chat.receipt(room, sender)
            finally:
                db.session.remove()

    def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run database work where it cannot stall the other sockets, and wait for it.

        SQLite has no cooperative I/O: under gevent its calls would hold every socket of the
        worker (docs/benchmarks.md, section 7), so they run in a real thread (sqlite3 releases
        the GIL while SQLite works). One thread: SQLite takes one writer at a time anyway. A
        server database (psycopg) already yields to other greenlets while it waits.
        """
        if self._db_thread is None:
            return fn(*args)
        return self._db_thread.apply(fn, args)

    # --- calls across a restart ------------------------------------------------------------------

    @property
    def _calls_file(self) -> Path:
        return Path(self.app.instance_path) / CALLS_FILE

    def _save_calls(self) -> None:
        live = self.calls.snapshot()
        if not live:
            return
        payload = {"saved_at": time.time(), "database": self.app.config["SQLALCHEMY_DATABASE_URI"]}
        self._calls_file.write_text(json.dumps({**payload, "calls": live}))
        log.info("handing %d live call(s) to the next server", len(live))

    def _restore_calls(self) -> None:
        # A restart on the same machine and database takes over the calls of the last process;
        # the media never went through the server, so the calls only need their signalling back.
        path = self._calls_file
        if not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if saved.get("database") != self.app.config["SQLALCHEMY_DATABASE_URI"]:
            return  # another server's calls (tests run several on one instance folder)
        path.unlink(missing_ok=True)
        if time.time() - float(saved.get("saved_at", 0)) < HANDOVER_WINDOW:
            self.calls.restore(saved.get("calls", []))
            log.info("took over %d live call(s)", len(saved.get("calls", [])))

    # --- adapters ------------------------------------------------------------------------------

    def _peers_of(self, user_id: int) -> set[int]:
        with self.app.app_context():
            return chat.peer_ids_of(user_id)

    def _is_echo_bot(self, user_id: int) -> bool:
        """Tell whether user_id is the echo-test bot, which answers many calls at once."""
        if self._echo_id is None:
            name = self.app.config.get("ECHO_USERNAME")
            if not name:
                return False
            with self.app.app_context():
                self._echo_id = db.session.scalar(select(User.id).where(User.username == name))
            if self._echo_id is None:
                return False
        return user_id == self._echo_id

    def _ring_offline(self, user_id: int, payload: dict[str, Any]) -> None:
        push = self.app.extensions.get("parley.push")
        if push is not None:
            push.notify(user_id, payload)


def _sqlite_thread(database_uri: str) -> ThreadPool | None:
    """Return a one-thread pool for SQLite work when running under gevent, else None."""
    if not database_uri.startswith("sqlite") or not monkey.is_module_patched("threading"):
        return None
    # While the pool's thread runs Python (the ORM), the worker's loop waits for the GIL up to
    # the switch interval, 5 ms by default: a relayed frame would wait that long.
    sys.setswitchinterval(SWITCH_INTERVAL)
    return ThreadPool(1)


def signaling() -> Signaling:
    """Return this app's signalling service."""
    service: Signaling = current_app.extensions["parley.signaling"]
    return service


@bp.before_request
def _guard() -> Any:
    # Cross-site WebSocket hijacking: a page elsewhere can open a socket with our cookie, so
    # the Origin must be ours, and the session must be signed in, before the upgrade.
    if not origin_allowed(request):
        log.warning("refused /ws upgrade from origin %r", request.headers.get("Origin"))
        return error_response(403, "cross-origin socket refused (Origin not allowed)")
    if not current_user.is_authenticated:
        return error_response(401, "sign in first")
    # Decline permessage-deflate: its zlib state cost about 37 KB per socket, most of a socket's
    # memory (docs/benchmarks.md), for frames that are small and mostly sent once.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@sock.route("/ws", bp=bp)
def ws_route(ws: Server) -> None:
    # simple-websocket reads 4 KiB at a time and then waits in select() for more. Over TLS the
    # rest of a 16 KiB record is then decrypted and pending inside the SSL object, where select()
    # cannot see it: a large frame (an SDP offer) sat unread until the client's next frame or
    # the next ping. Reading up to a whole record leaves nothing pending, and under load one
    # read takes several frames. Its reader has not run yet: nothing has yielded since the
    # upgrade, so every read uses this size.
    ws.receive_bytes = RECEIVE_BYTES
    ws.ws = FastReader(ws.ws)  # plain text frames read without wsproto's generic parser
    user = protocol.User(id=current_user.id, username=current_user.username)
    sid = session.get("sid")
    # Release the pooled connection flask-login used, and the ORM user it keeps in `g`: sockets
    # live for hours and each keeps its request context (TESTING-NOTES, docs/benchmarks.md).
    g.pop("_login_user", None)
    db.session.remove()
    signaling().serve(ws, user, sid)


def _wire(app: Flask, service: Signaling) -> None:
    app.extensions["parley.signaling"] = service
    app.extensions["parley.on_message"] = service.message_posted
    app.extensions["parley.on_room_created"] = service.room_created
    app.extensions["parley.on_receipt"] = service.receipt_moved
    app.extensions["parley.on_logout"] = service.signed_out


def init_app(app: Flask) -> None:
    """Register `/ws` and the signalling service of this app."""
    app.register_blueprint(bp)
    _wire(app, Signaling(app))
