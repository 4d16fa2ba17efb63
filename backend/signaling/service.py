"""The app's signalling service: sockets, presence, chat over the socket, and calls.

`Signaling` owns the Hub (who is connected where), the CallRegistry (live calls) and the router
that takes call signals to it (this process, or the cluster's leader). It runs each socket's
read loop, hears the HTTP side's signals (backend/signals.py) and is what gunicorn's shutdown
talks to. The database is the store's (store.py), simple-websocket the socket's (socket.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, current_app

from .. import chat, signals
from . import protocol
from .cluster import CallRouter, LeaderCalls, LocalCalls
from .handover import CallsFile
from .hub import Bus, Hub, InMemoryBus
from .pinger import Pinger
from .protocol import (
    CallReported,
    CallReportSend,
    ChatAck,
    ChatDeliver,
    ChatSend,
    Ping,
    Pong,
    ProtocolError,
    Receipt,
)
from .ratelimit import TokenBucket
from .redisbus import RedisBus
from .registry import CallRegistry, ThreadScheduler
from .roomframes import RoomRemoved, RoomUpdated
from .socket import Socket
from .store import ReportRefused, Store
from .tasks import spawn

log = logging.getLogger("parley.signaling")

# WebSocket close codes (RFC 6455) Parley uses; docs/protocol.md lists them.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008

CHAT_ERROR_REASONS = {400: "bad_message", 404: "not_found", 409: "forbidden"}
# The other side of a call hears `call_end` before the registry writes the call's record, so its
# report may come first: the record is looked for again every REPORT_POLL for up to REPORT_WAIT.
REPORT_WAIT = 5.0  # seconds
REPORT_POLL = 0.1


class Signaling:
    """The app's signalling service: sockets, presence, chat and calls.

    It starts on first use (or from gunicorn's post_worker_init), so a `flask db upgrade` run
    with REDIS_URL set never joins the cluster.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._sockets: dict[str, Socket] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Connect the bus (Redis when REDIS_URL is set) and take up the calls."""
        if self._started:  # every socket and signal calls this: no lock once started
            return
        with self._lock:
            if self._started:
                return
            config = self.app.config
            self.store = Store(self.app)
            self.bus: Bus
            redis_bus: RedisBus | None = None
            if config["REDIS_URL"]:
                self.bus = redis_bus = RedisBus(
                    config["REDIS_URL"],
                    prefix=config["REDIS_PREFIX"],
                    heartbeat=config["CLUSTER_HEARTBEAT"],
                    dead_after=3 * config["CLUSTER_HEARTBEAT"],
                )
            else:
                self.bus = InMemoryBus()
            self.hub = Hub(self.store.peers_of, self.bus)
            self.pinger = Pinger(float(config["WS_PING_INTERVAL"]))
            self.calls = CallRegistry(
                self.hub,
                self.store,
                ThreadScheduler(),
                ring_timeout=float(config["CALL_RING_TIMEOUT"]),
                grace_period=float(config["CALL_GRACE_PERIOD"]),
                ring_offline=self._ring_offline,
                takes_many=self.store.is_echo_bot,
                group_max=int(config["GROUP_CALL_MAX"]),
            )
            if config["JANUS_URL"]:
                self._use_sfu(config)
            self.router: CallRouter
            if redis_bus is not None:
                self.router = LeaderCalls(self.hub, self.calls, redis_bus)
            else:
                database = str(config["SQLALCHEMY_DATABASE_URI"])
                handover = CallsFile(self.app.instance_path, database)
                self.router = LocalCalls(self.hub, self.calls, handover)
            self._started = True

    def _use_sfu(self, config: Any) -> None:
        """Send group calls through the Janus at JANUS_URL (its client lives in backend/sfu)."""
        from backend.sfu.calls import SfuCalls
        from backend.sfu.janus import Janus

        side, most = self.calls.groups.sfu, int(config["SFU_CALL_MAX"])
        janus = Janus(config["JANUS_URL"], config["JANUS_API_SECRET"], config["JANUS_TIMEOUT"])
        calls = SfuCalls(janus, config["JANUS_ADMIN_KEY"], most, side.send, side.failed)
        side.use(calls, config["GROUP_CALLS"], most)

    @property
    def node(self) -> str:
        """Return this worker's node id, the prefix of its sockets' ids (starts the service)."""
        self.start()
        return self.hub.node

    def connect(self) -> None:
        """Hear the signals this service's app sends (and no other app's)."""
        signals.message_posted.connect(self.message_posted, sender=self.app)
        signals.receipt_moved.connect(self.receipt_moved, sender=self.app)
        signals.room_created.connect(self.room_created, sender=self.app)
        signals.members_changed.connect(self.members_changed, sender=self.app)
        signals.members_changed.connect(self.group_members_changed, sender=self.app)
        signals.signed_out.connect(self.signed_out, sender=self.app)

    # --- what the HTTP side and the server tell it ---------------------------------------------

    def message_posted(self, _app: Flask, *, members: list[int], message: dict[str, Any]) -> None:
        """Deliver a message stored through the HTTP API to every socket of the room's members."""
        self.start()
        frame = protocol.dump(ChatDeliver(message=message))
        sender = message["sender"]["id"]
        reached = [m for m in members if m != sender and self.hub.deliver(m, frame) > 0]
        if sender in members:  # someone who just left hears nothing more of the room
            self.hub.deliver(sender, frame)
        if reached:
            self._delivered(message["room_id"], reached, message["id"])

    def receipt_moved(self, _app: Flask, *, user_id: int, receipt: dict[str, Any]) -> None:
        """Tell every socket of user_id how far the others in a room got (`receipt`)."""
        self.start()
        self.hub.deliver(user_id, Receipt.model_validate(receipt))

    def room_created(self, _app: Flask, *, members: list[int]) -> None:
        """Let people who now share a room see each other's presence."""
        self.start()
        self._link(members, members)

    def members_changed(
        self,
        _app: Flask,
        *,
        room_id: int,
        members: list[int],
        added: list[int],
        removed: list[int],
        room: dict[str, Any],
    ) -> None:
        """Show a group's members who is in it now, tell who left, and mend presence links."""
        self.start()
        updated = protocol.dump(RoomUpdated.model_validate({"room": room}))
        for member in members:
            self.hub.deliver(member, updated)
        gone = protocol.dump(RoomRemoved(room_id=room_id))
        for user_id in removed:
            self.hub.deliver(user_id, gone)
        self._link(added, members)
        for user_id in removed:
            # Whoever the leaver still shares another room with stays linked.
            still = self.store.peers_of(user_id)
            for member in members:
                if member not in still:
                    self.hub.unlink(user_id, member)

    def group_members_changed(
        self, _app: Flask, *, room_id: int, members: list[int], removed: list[int], **_: Any
    ) -> None:
        """Drop who left a group from its live call; show the call to who came."""
        self.start()
        self.router.members_changed(room_id, members, removed)

    def _link(self, newcomers: list[int], members: list[int]) -> None:
        """Link each newcomer with each member for presence, once per pair."""
        pairs = {(min(a, b), max(a, b)) for a in newcomers for b in members if a != b}
        for a, b in sorted(pairs):
            self.hub.link(a, b)

    def signed_out(self, _app: Flask, *, user_id: int, sid: str | None) -> None:
        """Close the sockets of a session that signed out."""
        self.start()
        self.hub.close_session(user_id, sid, CLOSE_NORMAL, "signed out")

    def shutdown(self) -> None:
        """Hand live calls to the next server, then close every socket with 1001."""
        if not self._started:
            return
        self.router.shutdown()
        self.calls.groups.sfu.close()
        with self._lock:
            sockets = list(self._sockets.values())
        for conn in sockets:
            try:
                conn.close(CLOSE_GOING_AWAY, "server restarting")
            except Exception:
                log.debug("closing socket %s at shutdown failed", conn.id, exc_info=True)
        self.bus.close()

    def wait_closed(self, seconds: float) -> bool:
        """Wait up to `seconds` for every socket's read loop to end; True when they all did.

        Sockets are served outside gunicorn's request handlers (`adopt`), so a stopping worker
        waits here for the close handshakes that `shutdown` started.
        """
        deadline = time.monotonic() + seconds
        while self._sockets:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # --- one socket ----------------------------------------------------------------------------

    def adopt(self, conn: Socket, user: protocol.User) -> None:
        """Serve `conn` in a greenlet of its own (a thread outside gevent) and return at once.

        The route that upgraded the socket returns, and with it go gunicorn's request, the WSGI
        environ and Flask's contexts, which would otherwise live as long as the socket.
        """
        self.start()
        with self._lock:
            self._sockets[conn.id] = conn  # now: a shutdown from here on closes it
        spawn(self.serve, conn, user)

    def serve(self, conn: Socket, user: protocol.User) -> None:
        """Run one socket from welcome to close, in the caller's greenlet."""
        self.start()
        config = self.app.config
        bucket = TokenBucket(config["WS_MESSAGE_RATE"], config["WS_MESSAGE_BURST"])
        with self._lock:
            self._sockets[conn.id] = conn
        try:
            self.pinger.add(conn)
            self.hub.add(conn)
            self.router.opened(conn, user)
            for data in conn.frames():
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
            elif isinstance(message, CallReportSend):
                self._report(conn, message)
            else:
                self.router.handle(conn, message, data)
        except Exception:
            # A bug in one message must not end the socket or the worker.
            log.exception("handling %s from user %s failed", message.type, conn.user_id)
            self.hub.send(conn, protocol.error("internal", "the server failed on that message"))
        finally:
            self.store.release()

    def _chat(self, conn: Socket, message: ChatSend) -> None:
        # The socket's own greenlet waits for the store, so its frames stay in order and each
        # chat message is acked once; other sockets' frames are relayed meanwhile.
        try:
            payload, others, created = self.store.store_chat(conn.user_id, message)
        except chat.ChatError as exc:
            reason = CHAT_ERROR_REASONS.get(exc.status, "bad_message")
            self.hub.send(conn, protocol.error(reason, exc.message, message.type))
            return
        frame = protocol.dump(ChatDeliver(message=payload))
        reached: list[int] = []
        if created:
            reached = [other for other in others if self.hub.deliver(other, frame) > 0]
            self.hub.deliver(conn.user_id, frame, exclude=conn.id)
            delivered = bool(reached)
        else:
            # A resend of a stored message: it went out when it was first stored.
            delivered = any(self.hub.is_online(other) for other in others)
        self.hub.send(
            conn, ChatAck(client_id=message.client_id, message=payload, delivered=delivered)
        )
        if reached:
            # After the ack, which must not wait for this write: the ack tells this socket, a
            # receipt the sender's others, and the marker every page loaded from now on.
            self._delivered(payload["room_id"], reached, payload["id"], exclude=conn.id)

    def _report(self, conn: Socket, report: CallReportSend) -> None:
        """Keep a participant's report on the call's record; show both sides the record."""
        deadline = time.monotonic() + REPORT_WAIT
        try:
            while (found := self.store.report(conn.user_id, report)) is None:
                if time.monotonic() >= deadline:
                    error = protocol.error(
                        "not_found", "no ended call with that id", report.type, report.call_id
                    )
                    self.hub.send(conn, error)
                    return
                time.sleep(REPORT_POLL)  # a gevent sleep under the worker: other sockets go on
        except ReportRefused as exc:
            refused = protocol.error(exc.reason, exc.message, report.type, report.call_id)
            self.hub.send(conn, refused)
            return
        message, caller, callee = found
        frame = protocol.dump(CallReported(call_id=report.call_id, message=message))
        self.hub.deliver(caller, frame)
        self.hub.deliver(callee, frame)

    def _delivered(
        self, room_id: int, user_ids: list[int], message_id: int, exclude: str | None = None
    ) -> None:
        """Persist that a message reached a device of each of user_ids; send `receipt`s that moved.

        `exclude`: the sending socket, which its ack already told.
        """
        for user_id, receipt in self.store.mark_delivered(room_id, user_ids, message_id):
            self.hub.deliver(user_id, Receipt.model_validate(receipt), exclude=exclude)

    def _ring_offline(self, user_id: int, payload: protocol.PushPayload) -> None:
        push = self.app.extensions.get("parley.push")
        if push is not None:
            push.notify(user_id, payload)


def init_app(app: Flask) -> Signaling:
    """Give the app its signalling service, hearing the app's signals."""
    service = Signaling(app)
    service.connect()
    app.extensions["parley.signaling"] = service
    return service


def signaling() -> Signaling:
    """Return this app's signalling service."""
    service: Signaling = current_app.extensions["parley.signaling"]
    return service
