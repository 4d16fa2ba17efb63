"""A client of Janus's HTTP API (the REST transport): sessions, plugin handles, requests, events.

Janus answers a request at once, either with its result (`success`) or with an `ack` whose result
comes later as an event on the session's long poll (GET /janus/<session>), carrying the
request's transaction. One thread per session (a greenlet in the gevent worker) holds that poll
open; it hands each event either to the request waiting for it or to the handle's listener. The
poll also keeps the session alive. Every request and every wait has a time limit, so Janus being
down or slow never holds Parley up: the caller gets JanusError and decides.

The API secret goes with every request and never leaves the server.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("parley.sfu")

Event = dict[str, Any]
# One poll, one connection: closed by the thread that reads the answer, whatever happened to the
# client meanwhile (see Session).
_OWN_CONNECTION = {"Connection": "close"}
Listener = Callable[[Event], None]


class JanusError(Exception):
    """Janus refused a request, answered nonsense, or did not answer in time."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Janus:
    """The API of one Janus server, over HTTP."""

    def __init__(self, url: str, api_secret: str, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self.api_secret = api_secret
        self.timeout = timeout
        # A poll waits up to 30 s for events on Janus's side: its own timeout is longer.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout), limits=httpx.Limits(keepalive_expiry=2)
        )

    def post(self, path: str, body: dict[str, Any]) -> Event:
        """Send one request and return Janus's immediate answer (`success`, `ack`, ...)."""
        body = {**body, "transaction": body.get("transaction") or _transaction()}
        if self.api_secret:
            body["apisecret"] = self.api_secret
        try:
            answer = self._http.post(f"{self.url}{path}", json=body)
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JanusError(f"janus did not answer {body['janus']}: {exc}") from exc
        if not isinstance(data, dict):
            raise JanusError(f"janus answered {body['janus']} with {data!r}")
        if data.get("janus") == "error":
            error = data.get("error") or {}
            raise JanusError(str(error.get("reason", "error")), error.get("code"))
        return data

    def poll(self, session_id: int, timeout: float, http: httpx.Client) -> list[Event]:
        """Wait (up to Janus's 30 s) for the session's next events, on the session's own client."""
        params = {"maxev": "10", "rid": _transaction()}
        if self.api_secret:
            params["apisecret"] = self.api_secret
        try:
            answer = http.get(
                f"{self.url}/{session_id}", params=params, headers=_OWN_CONNECTION, timeout=timeout
            )
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JanusError(f"janus's event poll failed: {exc}") from exc
        if isinstance(data, dict):
            if data.get("janus") == "error":
                error = data.get("error") or {}
                raise JanusError(str(error.get("reason", "error")), error.get("code"))
            return [data]
        return [e for e in data if isinstance(e, dict)]

    def info(self) -> Event:
        """Return Janus's server_info (no session needed)."""
        try:
            return dict(self._http.get(f"{self.url}/info").json())
        except (httpx.HTTPError, ValueError) as exc:
            raise JanusError(f"janus did not answer info: {exc}") from exc

    def session(self, on_lost: Callable[[str], None] | None = None) -> Session:
        """Create a session and start its event poll."""
        data = self.post("", {"janus": "create"})
        return Session(self, int(data["data"]["id"]), on_lost)

    def close(self) -> None:
        self._http.close()


class Session:
    """A Janus session: its handles, the requests waiting for their events, and the poll."""

    def __init__(
        self, janus: Janus, session_id: int, on_lost: Callable[[str], None] | None
    ) -> None:
        self.janus = janus
        self.id = session_id
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[Event]]] = {}
        self._listeners: dict[int, Listener] = {}
        self.closed = False
        # The poll has a client of its own: Janus holds a poll up to 30 s even after the session
        # is destroyed, so destroy() closes the client rather than leave it to linger. A close
        # that comes while the poll is still connecting misses that connection (httpcore's pool
        # drops it unclosed), so each poll asks for a connection closed after its answer.
        self._poll_http = httpx.Client()
        self._poller = threading.Thread(target=self._poll, name=f"janus-{session_id}", daemon=True)
        self._poller.start()

    # --- requests ----------------------------------------------------------------------------

    def attach(self, plugin: str, listener: Listener) -> int:
        """Attach a handle to `plugin`; its events without a waiting request go to listener."""
        data = self.janus.post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        handle = int(data["data"]["id"])
        with self._lock:
            self._listeners[handle] = listener
        return handle

    def detach(self, handle: int) -> None:
        """Detach a handle (its peer connection closes); Janus's refusal is only logged."""
        with self._lock:
            self._listeners.pop(handle, None)
        try:
            self.janus.post(f"/{self.id}/{handle}", {"janus": "detach"})
        except JanusError as exc:
            log.info("janus: detaching handle %s: %s", handle, exc)

    def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> Event:
        """Send a plugin request and return its result: at once, or the event it waits for.

        A plugin's own error (`error_code` in its data) raises JanusError like Janus's.
        """
        transaction = _transaction()
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        done = threading.Event()
        box: list[Event] = []
        with self._lock:
            self._waiting[transaction] = (done, box)
        try:
            data = self.janus.post(f"/{self.id}/{handle}", request)
            if data.get("janus") == "ack":
                if not done.wait(self.janus.timeout):
                    raise JanusError(f"janus sent no result for {body.get('request')} in time")
                data = box[0]
        finally:
            with self._lock:
                self._waiting.pop(transaction, None)
        if data.get("janus") == "error":
            error = data.get("error") or {}
            raise JanusError(str(error.get("reason", "error")), error.get("code"))
        result = plugin_data(data)
        if "error_code" in result:
            raise JanusError(str(result.get("error", "plugin error")), result["error_code"])
        return data

    def trickle(self, handle: int, candidate: dict[str, Any] | None) -> None:
        """Pass a peer's ICE candidate to Janus (None: that peer has no more)."""
        body: dict[str, Any] = {"janus": "trickle"}
        body["candidate"] = candidate if candidate is not None else {"completed": True}
        self.janus.post(f"/{self.id}/{handle}", body)

    def destroy(self) -> None:
        """End the session (every handle with it) and its poll."""
        self.closed = True
        try:
            self.janus.post(f"/{self.id}", {"janus": "destroy"})
        except JanusError as exc:
            log.info("janus: destroying session %s: %s", self.id, exc)
        finally:
            self._poll_http.close()  # ends the poll now, not when Janus next answers it

    # --- events ------------------------------------------------------------------------------

    def _poll(self) -> None:
        try:
            self._poll_events()
        finally:
            self._poll_http.close()

    def _poll_events(self) -> None:
        failures = 0
        while not self.closed:
            try:
                events = self.janus.poll(self.id, self.janus.timeout + 35, self._poll_http)
                failures = 0
            except RuntimeError:
                if self.closed:  # destroy() closed the client between our check and the poll
                    return
                raise
            except JanusError as exc:
                if self.closed:
                    return
                failures += 1
                if exc.code == 458 or failures >= 3:  # 458: no such session (Janus restarted)
                    self._lost(str(exc))
                    return
                time.sleep(1)
                continue
            for event in events:
                self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            waiting = self._waiting.get(str(event.get("transaction", "")))
            listener = self._listeners.get(int(event.get("sender") or 0))
        if waiting is not None and event.get("janus") in ("event", "error", "success"):
            done, box = waiting
            box.append(event)
            done.set()
            return
        if event.get("janus") == "keepalive" or listener is None:
            return
        try:
            listener(event)
        except Exception:
            log.exception("janus: handling %s", event.get("janus"))

    def _lost(self, why: str) -> None:
        self.closed = True
        log.warning("janus session %s lost: %s", self.id, why)
        with self._lock:
            waiting = list(self._waiting.values())
        for done, box in waiting:
            box.append({"janus": "error", "error": {"code": 458, "reason": why}})
            done.set()
        if self._on_lost is not None:
            self._on_lost(why)


def plugin_data(event: Event) -> dict[str, Any]:
    """Return the plugin's own data in an event or answer ({} when it has none)."""
    data = (event.get("plugindata") or {}).get("data")
    return data if isinstance(data, dict) else {}


def _transaction() -> str:
    return secrets.token_urlsafe(12)
