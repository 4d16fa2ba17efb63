"""Load generator for a running Parley (yours, deployed): calls and chat between pairs of users.

    .venv/bin/python bench/loadgen.py --url https://parley.example.org --pairs 20 --duration 60

Every pair signs in (registering `<prefix><n>` accounts the first time; their cookies are kept in
--state so later runs do not sign in again), opens a room, opens one socket each, starts a call
(placeholder SDP: no media flows) and then, for --duration seconds, each side sends
`ice_candidate` frames at --rate per second, starting at a random point of the first period
(--phase); every --chat-every-th frame of the whole run is a
chat message instead.
The run is bounded twice: it stops at --duration seconds or after --max-messages frames in all,
whichever comes first, then waits (up to --grace seconds) until every candidate has arrived and
every chat message is acked, hangs up, closes the sockets and prints JSON: frames sent and
received, relay latency p50/p99/max (send -> the peer's receipt, one clock: both ends live in this
process), chat messages acked and delivered, every error frame by reason, and the generator's
own cost: its CPU seconds during the load and how late its event loop ran a 2 ms timer (its
"loop lag": every relay latency includes the generator's delay in sending and in reading, so a
loop lag p99 near the relay p99 means the figure measures the generator or the machine, not the
server). `--sign-in-only` signs the accounts in, keeps their cookies and stops.

Keep --rate below the server's per-socket limit (WS_MESSAGE_RATE, 20/s by default) unless the
server is set up for the test. Registering many accounts hits the sign-in limit
(AUTH_RATE_LIMIT, 10 per minute per address by default): create the accounts in batches, or raise
the limit on the server for the test window. Point it only at servers you run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@dataclass
class Stats:
    sent: int = 0
    received: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    chat_acked: int = 0
    chat_delivered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    budget: int = 0

    def take(self) -> int:
        """Count one frame against --max-messages; return its number, 0 once the budget is spent."""
        if self.sent >= self.budget:
            return 0
        self.sent += 1
        return self.sent


@dataclass
class InFlight:
    """One pair's frames, to hang up only once they are through."""

    candidates_sent: int = 0
    candidates_received: int = 0
    chats_sent: int = 0
    chats_acked: int = 0

    def through(self) -> bool:
        """Tell whether every candidate sent arrived and every chat message was acked."""
        return (
            self.candidates_received >= self.candidates_sent and self.chats_acked >= self.chats_sent
        )


class Client:
    """One signed-in account: an HTTPS client with its session cookie."""

    def __init__(self, args: argparse.Namespace, name: str, state: dict[str, str]) -> None:
        self.args = args
        self.name = name
        self.state = state
        self.http = httpx.AsyncClient(
            base_url=args.url, verify=args.ssl, headers={"Origin": args.url}, timeout=30
        )
        self.id = 0

    async def sign_in(self) -> None:
        cookie = self.state.get(self.name)
        if cookie:
            self.http.cookies.set("parley_session", cookie)
            me = await self.http.get("/api/me")
            if me.status_code == 200:
                self.id = int(me.json()["id"])
                return
        body = {"username": self.name, "password": self.args.password}
        response = await self.http.post("/api/register", json=body)
        if response.status_code == 409:
            response = await self.http.post("/api/login", json=body)
        if response.status_code == 429:
            raise SystemExit(f"sign-in rate limited at {self.name}: see --help (AUTH_RATE_LIMIT)")
        response.raise_for_status()
        self.id = int(response.json()["id"])
        self.state[self.name] = self.http.cookies.get("parley_session") or ""

    async def socket(self) -> ClientConnection:
        ws_url = self.args.url.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
        cookie = f"parley_session={self.http.cookies.get('parley_session')}"
        ws = await connect(
            ws_url,
            origin=self.args.url,
            additional_headers={"Cookie": cookie},
            ssl=self.args.ssl if ws_url.startswith("wss") else None,
            open_timeout=30,
        )
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
        return ws


async def run_pair(a: Client, b: Client, args: argparse.Namespace, stats: Stats) -> None:
    room = await a.http.post("/api/rooms", json={"username": b.name})
    room.raise_for_status()
    room_id = int(room.json()["id"])
    wa, wb = await a.socket(), await b.socket()
    call_id = str(uuid.uuid4())
    ready = asyncio.Event()
    mine = InFlight()

    async def reader(ws: ClientConnection, me: Client) -> None:
        async for text in ws:
            frame = json.loads(text)
            kind = frame["type"]
            if kind == "call_offer" and me is b:
                answer = {"type": "call_answer", "call_id": call_id, "sdp": SDP}
                await ws.send(json.dumps(answer))
                ready.set()
            elif kind == "ice_candidate":
                stats.received += 1
                mine.candidates_received += 1
                stamp = int(frame["candidate"]["candidate"].split(":")[1])
                stats.latencies_ms.append((time.perf_counter_ns() - stamp) / 1e6)
            elif kind == "chat_ack":
                stats.chat_acked += 1
                mine.chats_acked += 1
                stats.chat_delivered += bool(frame["delivered"])
            elif kind == "error":
                stats.errors[frame.get("reason", "?")] += 1

    readers = [asyncio.create_task(reader(wa, a)), asyncio.create_task(reader(wb, b))]
    offer = {"type": "call_offer", "call_id": call_id, "room_id": room_id, "to": b.id,
             "media": "audio", "sdp": SDP}  # fmt: skip
    await wa.send(json.dumps(offer))
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)  # the answer reaches the caller
    deadline = time.monotonic() + args.duration  # of load: setup on a slow machine is not load

    async def sender(ws: ClientConnection) -> None:
        if args.phase == "random":
            # Independent users are not in step: without this every socket sent in the same
            # instant each 1/rate seconds, and the burst queued at the server.
            await asyncio.sleep(random.uniform(0, 1 / args.rate))
        while time.monotonic() < deadline and (n := stats.take()):
            if args.chat_every and n % args.chat_every == 0:
                text = f"loadgen {n}"
                frame = {"type": "chat_message", "room_id": room_id,
                         "client_id": str(uuid.uuid4()), "text": text}  # fmt: skip
                mine.chats_sent += 1
            else:
                mine.candidates_sent += 1
                candidate = {"candidate": f"candidate:{time.perf_counter_ns()}", "sdpMid": "0"}
                frame = {"type": "ice_candidate", "call_id": call_id, "candidate": candidate}
            await ws.send(json.dumps(frame))
            await asyncio.sleep(1 / args.rate)

    await asyncio.gather(sender(wa), sender(wb))
    # Hang up once every candidate and ack is through, or after a grace period: a call_end
    # overtaking the other socket's last candidates made them `not_found` errors.
    through = time.monotonic() + args.grace
    while time.monotonic() < through and not mine.through():
        await asyncio.sleep(0.05)
    await wa.send(json.dumps({"type": "call_end", "call_id": call_id}))
    await asyncio.sleep(0.2)  # frames that would answer the hang-up (errors) arrive
    for task in readers:
        task.cancel()
    await asyncio.gather(wa.close(), wb.close(), return_exceptions=True)


LAG_TICK = 0.002  # seconds: the timer whose lateness is the generator's loop lag


async def loop_lag(lags: list[float]) -> None:
    """Record, until cancelled, how late the event loop runs a LAG_TICK timer (ms)."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(LAG_TICK)
        lags.append((time.perf_counter() - started - LAG_TICK) * 1e3)


def quantiles(values: list[float]) -> dict[str, float | None]:
    """Return p50, p99 and max of values in ms, rounded; None for each when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
        "max": round(ordered[-1], 2),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    state_path = Path(args.state)
    state: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    clients = [Client(args, f"{args.prefix}{n}", state) for n in range(2 * args.pairs)]
    started = time.monotonic()
    try:
        for client in clients:  # one at a time: sign-in is deliberately slow (argon2)
            await client.sign_in()
    finally:
        state_path.write_text(json.dumps(state))
    signed_in = time.monotonic() - started
    if args.sign_in_only:
        for client in clients:
            await client.http.aclose()
        return {"url": args.url, "pairs": args.pairs, "sign_in_s": round(signed_in, 2)}
    stats = Stats(budget=args.max_messages)
    lags: list[float] = []
    lag_task = asyncio.create_task(loop_lag(lags))
    cpu_before = time.process_time()
    started = time.monotonic()
    pairs = [run_pair(clients[2 * i], clients[2 * i + 1], args, stats) for i in range(args.pairs)]
    await asyncio.gather(*pairs)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    lag_task.cancel()
    for client in clients:
        await client.http.aclose()
    return {
        "url": args.url,
        "pairs": args.pairs,
        "sign_in_s": round(signed_in, 2),
        "run_s": round(elapsed, 2),
        "frames_sent": stats.sent,
        "candidates_received": stats.received,
        "relay_ms": quantiles(stats.latencies_ms),
        "chat_acked": stats.chat_acked,
        "chat_delivered": stats.chat_delivered,
        "errors": dict(stats.errors),
        "generator": {"cpu_s": round(cpu, 2), "loop_lag_ms": quantiles(lags)},
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the Parley origin, e.g. https://host:8443")
    parser.add_argument("--ca", help="a CA file to trust (e.g. certs/ca.crt of a local Parley)")
    parser.add_argument("--pairs", type=int, default=10, help="pairs of users in calls (10)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load, at most (30)")
    parser.add_argument(
        "--max-messages", type=int, default=100_000, help="frames sent in all, at most (100000)"
    )
    parser.add_argument("--rate", type=float, default=5, help="frames per second per socket (5)")
    parser.add_argument(
        "--chat-every", type=int, default=10, help="every Nth frame is chat (10; 0: none)"
    )
    parser.add_argument(
        "--phase",
        choices=("random", "lockstep"),
        default="random",
        help="when each socket starts sending: at a random point of its first period (random), "
        "or all at once (lockstep, as before 2026-11-27)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10,
        help="seconds to wait after the load for frames still in flight before hanging up (10)",
    )
    parser.add_argument(
        "--sign-in-only",
        action="store_true",
        help="sign the accounts in, keep their cookies in --state, and stop (no load)",
    )
    parser.add_argument("--prefix", default="loadgen", help="account name prefix (loadgen)")
    parser.add_argument("--password", default="loadgen password 1", help="accounts' password")
    parser.add_argument("--state", default=".loadgen-cookies.json", help="where cookies are kept")
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    if urlsplit(args.url).scheme not in ("http", "https"):
        parser.error("--url must be http(s)://host[:port]")
    args.ssl = ssl.create_default_context(cafile=args.ca)
    return args


if __name__ == "__main__":
    result = asyncio.run(main(parse()))
    json.dump(result, sys.stdout, indent=1)
    print()
