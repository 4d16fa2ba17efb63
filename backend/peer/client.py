"""A Parley account over HTTPS and the signalling socket, with reconnects, for asyncio peers.

Frames go out as the client models of backend/signaling/protocol.py and come in as its server
models, so the peer speaks exactly the wire format the server validates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from backend.signaling.groupframes import (
    GroupCallJoined,
    GroupCallRing,
    GroupCallState,
    SfuDescription,
)
from backend.signaling.protocol import (
    CallAnswer,
    CallAnsweredElsewhere,
    CallBusy,
    CallCancelled,
    CallDescription,
    CallEnd,
    CallMedia,
    CallMerged,
    CallOffer,
    CallRejected,
    CallResumed,
    CallRinging,
    CallTimeout,
    ChatAck,
    ChatDeliver,
    Error,
    IceCandidate,
    Pong,
    Presence,
    Receipt,
    Welcome,
)

log = logging.getLogger("parley.peer")

# Every frame the server sends, told apart by `type`; a type this list lacks is skipped.
ServerFrame = Annotated[
    Welcome
    | Pong
    | Presence
    | ChatAck
    | ChatDeliver
    | Receipt
    | CallOffer
    | CallRinging
    | CallBusy
    | CallMerged
    | CallAnswer
    | CallAnsweredElsewhere
    | IceCandidate
    | CallDescription
    | CallMedia
    | CallRejected
    | CallCancelled
    | CallEnd
    | CallResumed
    | CallTimeout
    | GroupCallRing
    | GroupCallState
    | GroupCallJoined
    | SfuDescription
    | Error,
    Field(discriminator="type"),
]
_frames: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)

Handler = Callable[[ServerFrame], Awaitable[None]]
REPO = Path(__file__).resolve().parent.parent.parent


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Trust the system CAs plus Parley's local CA (certs/ca.crt) or the file named."""
    context = ssl.create_default_context()
    local = Path(ca_file) if ca_file else REPO / "certs" / "ca.crt"
    if local.exists():
        context.load_verify_locations(cafile=str(local))
    return context


def parse(text: str | bytes) -> ServerFrame | None:
    """Return a server frame as its model; None for a type or shape this peer does not know."""
    try:
        return _frames.validate_json(text)
    except ValidationError as exc:
        log.debug("frame skipped: %s", exc.errors()[0]["msg"])
        return None


class ParleyClient:
    """Sign in, keep one socket open (reconnecting with backoff), hand every frame to `handler`."""

    def __init__(
        self, base_url: str, username: str, password: str, ca_file: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.ssl = ssl_context(ca_file)
        # Idle connections dropped well before the server drops them (gunicorn's keepalive, 5 s):
        # at the same 5 s, a request could go out on a connection the server is closing.
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            verify=self.ssl,
            headers={"Origin": self.base_url},
            timeout=15,
            limits=httpx.Limits(keepalive_expiry=2),
        )
        self.ws: ClientConnection | None = None
        self.handler: Handler | None = None
        self.connected = asyncio.Event()
        self._stopped = False

    async def sign_in(self, register: bool = True) -> dict[str, Any]:
        """Sign in, registering the account first when it does not exist yet."""
        body = {"username": self.username, "password": self.password}
        response = await self.http.post("/api/login", json=body)
        if response.status_code == 401 and register:
            response = await self.http.post("/api/register", json=body)
        response.raise_for_status()
        user: dict[str, Any] = response.json()
        return user

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the JSON API; signs in again once when the session expired."""
        response = await self.http.request(method, path, json=body)
        if response.status_code == 401:
            await self.sign_in(register=False)
            response = await self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    async def send(self, message: BaseModel) -> bool:
        """Send one frame, a client model of protocol.py; False when the socket is down."""
        if self.ws is None:
            return False
        try:
            await self.ws.send(message.model_dump_json(by_alias=True))
        except ConnectionClosed:
            return False
        return True

    async def run(self, handler: Handler) -> None:
        """Keep the socket open until stop(), reconnecting with capped backoff and jitter."""
        self.handler = handler
        attempt = 0
        ws_url = self.base_url.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
        while not self._stopped:
            try:
                cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
                async with connect(
                    ws_url,
                    ssl=self.ssl if ws_url.startswith("wss") else None,
                    origin=self.base_url,  # type: ignore[arg-type]
                    additional_headers={"Cookie": cookie},
                    max_size=2**20,
                ) as ws:
                    self.ws = ws
                    attempt = 0
                    async for text in ws:
                        message = parse(text)
                        if isinstance(message, Welcome):
                            self.connected.set()
                        if message is not None:
                            await self._dispatch(message)
            except InvalidStatus as refused:
                if refused.response.status_code == 401:
                    await self._sign_in_again()
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake) as exc:
                # InvalidHandshake: e.g. a server going down closed the connection before its
                # HTTP answer (seen while a test restarted the server; it ended the echo bot).
                log.info("socket closed (%s); reconnecting", exc)
            finally:
                self.ws = None
                self.connected.clear()
            if self._stopped:
                break
            delay = random.uniform(0, min(15.0, 0.5 * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)

    async def _sign_in_again(self) -> None:
        try:
            await self.sign_in(register=False)
        except (httpx.HTTPError, OSError) as exc:
            log.info("sign-in failed (%s); will retry", exc)

    async def _dispatch(self, message: ServerFrame) -> None:
        if self.handler is None:
            return
        try:
            await self.handler(message)
        except Exception:
            log.exception("handling %s failed", message.type)

    async def stop(self) -> None:
        """Close the socket and the HTTP client."""
        self._stopped = True
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()
