"""Python peers (aiortc) as test participants: sign-in, media, presence and the echo room."""

from __future__ import annotations

import asyncio
import time

from backend.peer.client import Handler, ParleyClient, ServerFrame
from backend.peer.peer import PeerCall
from backend.signaling import protocol
from harness.servers import ParleyServer

ECHO_PASSWORD = "echo-bot-test-password"


def client(server: ParleyServer, name: str) -> ParleyClient:
    """Return a Python peer's account on the test server (password "correct horse")."""
    return ParleyClient(server.url, name, "correct horse", str(server.certs / "ca.crt"))


async def online(c: ParleyClient, handler: Handler) -> asyncio.Task[None]:
    """Sign in and run the socket; return once it is connected."""
    await c.sign_in()
    task = asyncio.ensure_future(c.run(handler))
    await asyncio.wait_for(c.connected.wait(), 30)
    return task


async def flowing(call: PeerCall, kinds: tuple[str, ...], seconds: float = 30) -> dict[str, int]:
    """Wait until frames of every kind keep arriving; return the counts."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(call.received[k] > 20 for k in kinds):
            return dict(call.received)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no media: {await call.stats()}")


async def echo_id(c: ParleyClient, seconds: float = 60) -> int:
    """Wait for the user's echo room (it comes once the bot has signed in); return the bot's id."""
    deadline = time.monotonic() + seconds
    while True:
        rooms = (await c.api("GET", "/api/rooms"))["rooms"]
        if [r["peer"]["username"] for r in rooms] == ["echo"]:
            return int(rooms[0]["peer"]["id"])
        assert time.monotonic() < deadline, f"no echo room: {rooms}"
        await c.sign_in(register=False)
        await asyncio.sleep(0.5)


class Presence:
    """Who is online as this client's socket hears it; passes every frame on to `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.online: set[int] = set()

    async def __call__(self, message: ServerFrame) -> None:
        if isinstance(message, protocol.Welcome):
            self.online = set(message.online)
        elif isinstance(message, protocol.Presence):
            if message.online:
                self.online.add(message.user_id)
            else:
                self.online.discard(message.user_id)
        await self.handler(message)

    async def until_online(self, user_id: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while user_id not in self.online:
            assert time.monotonic() < deadline, f"user {user_id} not online in {seconds}s"
            await asyncio.sleep(0.1)
