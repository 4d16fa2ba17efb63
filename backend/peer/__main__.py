"""`python -m backend.peer echo|call USER|answer|join ROOM_ID`: the echo bot and test peers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import ParleyClient
from .echo import run_echo
from .group import GroupPeer
from .peer import Peer, PeerCall

log = logging.getLogger("parley.peer")


@dataclass
class Session:
    """A signed-in client, its peer and the task that keeps its socket open."""

    client: ParleyClient
    peer: Peer
    runner: asyncio.Task[None]

    async def report(self, stats: dict[str, Any]) -> None:
        """Hang up, sign off and print the call's stats as one JSON line."""
        await self.peer.close()
        await self.client.stop()
        self.runner.cancel()
        print(json.dumps(stats))


async def _online(args: argparse.Namespace, peer_of: Callable[[ParleyClient], Peer]) -> Session:
    """Sign in, open the socket in the background and return the session."""
    client = ParleyClient(args.url, args.username, args.password, args.ca_file)
    await client.sign_in()
    peer = peer_of(client)
    return Session(client, peer, asyncio.ensure_future(client.run(peer.handle)))


async def _call(args: argparse.Namespace) -> int:
    session = await _online(args, Peer)
    await asyncio.wait_for(session.client.connected.wait(), 15)
    call = await session.peer.call(args.user, args.media)
    try:
        await asyncio.wait_for(call.answered.wait(), args.ring)
        if args.camera_on:
            await session.peer.camera_on(call)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(call.ended.wait(), args.seconds)
        stats = await call.stats()
    except TimeoutError:
        stats = await call.stats()
        stats["end_reason"] = stats["end_reason"] or "no answer"
    await session.report(stats)
    return 0 if stats["frames_received"]["audio"] > 0 else 1


async def _answer(args: argparse.Namespace) -> int:
    first: asyncio.Future[PeerCall] = asyncio.get_running_loop().create_future()

    def answered(call: PeerCall) -> None:
        if not first.done():
            first.set_result(call)

    session = await _online(args, lambda client: Peer(client, on_call=answered))
    call = await first
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(call.ended.wait(), args.seconds)
    await session.report(await call.stats())
    return 0


async def _first(events: list[asyncio.Event], seconds: float) -> None:
    """Wait until one of `events` is set, at most `seconds`."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()


async def _progress(peer: GroupPeer) -> None:
    """Print the group call's stats so far as one JSON line."""
    call = peer.group_call
    stats = await call.stats() if call else {"joined": False, "participants": {}}
    print(json.dumps(stats), flush=True)


async def _join(args: argparse.Namespace) -> int:
    width, height = (int(n) for n in args.size.split("x"))
    session = await _online(args, lambda client: GroupPeer(client, args.media, (width, height)))
    peer = session.peer
    assert isinstance(peer, GroupPeer)
    # SIGINT or SIGTERM leaves the call politely and still prints the stats; SIGUSR1 prints the
    # stats so far as a line of their own (bench/mesh.py reads the bitrate between two).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    printing: set[asyncio.Task[None]] = set()  # held until done: the loop keeps weak references

    def progress() -> None:
        task = loop.create_task(_progress(peer))
        printing.add(task)
        task.add_done_callback(printing.discard)

    loop.add_signal_handler(signal.SIGUSR1, progress)
    await asyncio.wait_for(session.client.connected.wait(), 15)
    # With --start, a room with no live call gets one at once; without, we wait for one to ring
    # (a stop signal ends that wait too: the stats say it stopped).
    if not args.start:
        log.info("online; waiting up to %.0f s for a call in room %d", args.wait, args.room_id)
    waiting = asyncio.ensure_future(peer.live_call(args.room_id, 0 if args.start else args.wait))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    live = waiting.result() if waiting.done() else None
    waiting.cancel()
    if stop.is_set() and live is None:
        await session.report({"room_id": args.room_id, "joined": False, "end_reason": "stopped"})
        return 1
    if live is not None:
        call = await peer.join(args.room_id, live, args.media)
    elif args.start:
        call = await peer.start(args.room_id, args.media)
    else:
        await session.report({"room_id": args.room_id, "joined": False, "end_reason": "no call"})
        return 1
    await _first([call.joined, call.ended, stop], args.wait)
    if call.joined.is_set():
        await _first([call.ended, stop], args.seconds)
    await peer.leave()
    stats = await call.stats()
    await session.report(stats)
    return 0 if stats["joined"] else 2


def main() -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(prog="python -m backend.peer", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("PARLEY_URL", "https://localhost:8443"))
    parser.add_argument("--ca-file", default=os.environ.get("PARLEY_CA_FILE"))
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="run the echo-test bot")
    echo.add_argument(
        "--max-seconds", type=float, default=float(os.environ.get("ECHO_MAX_SECONDS", "120"))
    )
    helps = {
        "call": "call USER as PEER_USERNAME and print the call's stats",
        "answer": "answer a call as PEER_USERNAME and print the call's stats",
        "join": "join a group room's call and print stats per remote participant",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--username", default=os.environ.get("PEER_USERNAME", "peer"))
        sub.add_argument("--password", default=os.environ.get("PEER_PASSWORD", "peer-password"))
        sub.add_argument("--seconds", type=float, default=10, help="how long to stay in the call")
        if name != "answer":
            sub.add_argument("--media", choices=["audio", "video"], default="video")
        if name == "call":
            sub.add_argument("user", help="the username to call")
            sub.add_argument("--ring", type=float, default=30, help="seconds to wait for an answer")
            sub.add_argument(
                "--camera-on",
                action="store_true",
                help="once answered, turn the camera on (a voice call's video, by renegotiation)",
            )
        if name == "join":
            sub.add_argument("room_id", type=int, help="the group room's id")
            sub.add_argument("--start", action="store_true", help="start a call if none is live")
            sub.add_argument("--wait", type=float, default=30, help="seconds to wait for a call")
            sub.add_argument("--size", default="320x240", help="the picture sent, WIDTHxHEIGHT")
    args = parser.parse_args()
    # Our own INFO lines only: aioice logs every candidate pair (about 30 lines a call) and
    # httpx every request (the bot's expected 401 before it registers) at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("parley").setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    if args.command == "echo":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_echo(args.url, args.ca_file, args.max_seconds))
        return 0
    runner = {"call": _call, "answer": _answer, "join": _join}[args.command]
    return asyncio.run(runner(args))


if __name__ == "__main__":
    sys.exit(main())
