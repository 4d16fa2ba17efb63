"""Signalling capacity of one gunicorn gevent worker beside the asyncio `websockets` floor.

    .venv/bin/python bench/signaling.py [--sockets 1000,5000,10000] [--pairs 50,500] [--repeats 3]
                                        [--load-rate 5000] [--load-samples 10000]
                                        [--targets parley,floor] [--priority normal]

For each target (Parley, then the floor in bench/floor_relay.py) and each repeat it measures:
- idle sockets: time to open N authenticated sockets, and the worker's memory per idle socket:
  the sockets open in a warm-up step (N/5) and four more steps; after each, the median of five
  RSS samples; the per-socket figure is the least-squares slope over the steps, and "RSS steps"
  the spread of the four steps' own per-socket growth (so one noisy step shows);
- relay latency: one pair in an active call sends ice_candidate frames one at a time while the
  N sockets idle; p50 and p99 of send -> receive;
- relay latency under load: the same (10,000 probes, --load-samples), while background pairs
  send a paced total of R frames/s (--load-rate, 5,000 by default; 0 skips it);
- throughput: P pairs in active calls send as fast as a window of 64 in-flight frames allows.
Prints a Markdown table of medians (min-max over repeats) and writes JSON to bench/results/.

Everything runs on 127.0.0.1 without TLS (both targets alike: the cost of TLS is not the
relay's). Users and rooms are inserted straight into a fresh SQLite database and session cookies
are signed with the server's key, so setup does not pay for thousands of argon2 sign-ins. The
per-socket message rate limit is lifted for Parley: the load generator sends far faster per
socket than any client may.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
WINDOW = 64
RT_PRIORITY = 10  # --priority realtime: as bench/loadgen_local.py, above every ordinary process
MEMORY_STEPS = 4  # idle sockets open in a warm-up step and then this many equal steps


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def settled_rss_kb(pid: int, samples: int = 5, gap: float = 0.3) -> float:
    """Return the median of a few RSS samples taken after the worker has settled."""
    await asyncio.sleep(1.0)
    values = []
    for _ in range(samples):
        values.append(rss_kb(pid))
        await asyncio.sleep(gap)
    return float(statistics.median(values))


def memory_slope(points: list[tuple[int, float]]) -> tuple[float, list[float]]:
    """Return KB per socket (least squares over the steps after warm-up) and each step's own."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    steps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(points, points[1:], strict=False)]
    return slope, steps


@contextmanager
def scheduled(priority: str, pid: int) -> Iterator[None]:
    """Run the block with the target's process and this generator under `priority`.

    realtime: SCHED_FIFO for every thread of the target's process and for this process's main
    thread (root, or CAP_SYS_NICE), as bench/loadgen_local.py does: on two cores each gets one,
    not waiting behind other processes; it lifts nothing the target itself does.
    """
    if priority != "realtime":
        yield
        return
    tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()] + [0]
    for task in tasks:
        os.sched_setscheduler(task, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    try:
        yield
    finally:
        for task in tasks:
            try:
                os.sched_setscheduler(task, os.SCHED_OTHER, os.sched_param(0))
            except ProcessLookupError:
                pass


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


# --- targets ---------------------------------------------------------------------------------


class Target:
    """A relay under test: start it, open a socket for a user, frame the messages."""

    name = ""
    process: subprocess.Popen[bytes]
    port: int

    def worker_pid(self) -> int:
        return self.process.pid

    async def open(self, user: int) -> ClientConnection:
        raise NotImplementedError

    async def start_call(self, a: int, b: int, wa: ClientConnection, wb: ClientConnection) -> str:
        return ""

    def signal(self, call_id: str, to: int, stamp: int) -> str:
        raise NotImplementedError

    async def end_call(self, call_id: str, ws: ClientConnection) -> None:
        if call_id:
            await ws.send(json.dumps({"type": "call_end", "call_id": call_id}))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Floor(Target):
    name = "websockets floor"

    async def start(self, users: int, workdir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "floor_relay.py"), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_port(self.port)

    async def open(self, user: int) -> ClientConnection:
        return await connect(
            f"ws://127.0.0.1:{self.port}/?user={user}", max_size=None, open_timeout=60
        )

    def signal(self, call_id: str, to: int, stamp: int) -> str:
        return json.dumps(
            {"type": "ice_candidate", "to": to, "candidate": {"candidate": f"candidate:{stamp}"}}
        )


class Parley(Target):
    name = "Parley (1 gevent worker)"

    @staticmethod
    def environment(workdir: Path, workers: int = 1) -> dict[str, str]:
        """The server's environment: plain ws:// on loopback, a fresh database, no rate limit."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TURN_", "REDIS_"))}
        env.update(
            DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
            SECRET_KEY="bench-secret-key",
            PARLEY_TLS="0",
            SESSION_COOKIE_SECURE="0",
            HOST="127.0.0.1",
            WS_MESSAGE_RATE="1000000",
            WS_MESSAGE_BURST="1000000",
            WEB_CONCURRENCY=str(workers),
            LOG_LEVEL="warning",
        )
        return env

    def prepare(self, env: dict[str, str], users: int) -> None:
        """Create the schema, insert the users and rooms, and sign their session cookies."""
        from harness.servers import migrate

        migrate(env)
        self.cookies, self.rooms = seed(env, users)

    async def start(self, users: int, workdir: Path) -> None:
        self.port = free_port()
        env = {**self.environment(workdir), "PORT": str(self.port)}
        self.prepare(env, users)
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "backend:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_port(self.port)

    def worker_pid(self) -> int:
        for _ in range(50):
            kids = children(self.process.pid)
            if kids:
                return kids[0]
            time.sleep(0.1)
        raise RuntimeError("no gunicorn worker")

    async def open(self, user: int) -> ClientConnection:
        ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws",
            origin=f"http://127.0.0.1:{self.port}",  # type: ignore[arg-type]
            additional_headers={"Cookie": f"parley_session={self.cookies[user]}"},
            max_size=None,
            open_timeout=60,
        )
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        return ws

    async def start_call(self, a: int, b: int, wa: ClientConnection, wb: ClientConnection) -> str:
        call_id = str(uuid.uuid4())
        offer = {"type": "call_offer", "call_id": call_id, "room_id": self.rooms[(a, b)]}
        await wa.send(json.dumps({**offer, "to": b, "media": "audio", "sdp": SDP}))
        await asyncio.wait_for(until(wb, "call_offer"), 10)
        await wb.send(json.dumps({"type": "call_answer", "call_id": call_id, "sdp": SDP}))
        await asyncio.wait_for(until(wa, "call_answer"), 10)
        return call_id

    def signal(self, call_id: str, to: int, stamp: int) -> str:
        return json.dumps(
            {
                "type": "ice_candidate",
                "call_id": call_id,
                "candidate": {"candidate": f"candidate:{stamp}", "sdpMid": "0"},
            }
        )


def seed(env: dict[str, str], users: int) -> tuple[dict[int, str], dict[tuple[int, int], int]]:
    """Insert users 1..users and rooms (1,2), (3,4), ...; return signed session cookies."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from backend import create_app
        from backend.extensions import db
        from backend.models import Room, User

        app = create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    cookies: dict[int, str] = {}
    rooms: dict[tuple[int, int], int] = {}
    with app.app_context():
        db.session.add_all(
            User(id=i, username=f"bench{i}", password_hash="x") for i in range(1, users + 1)
        )
        db.session.flush()
        made = [Room.direct(i, i + 1) for i in range(1, users, 2)]
        db.session.add_all(made)
        db.session.commit()
        rooms = {(r.user_a_id, r.user_b_id): r.id for r in made}
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        for i in range(1, users + 1):
            cookies[i] = serializer.dumps({"_user_id": str(i), "_fresh": False, "sid": f"s{i}"})
    return cookies, rooms


async def until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == kind:
            return frame


# --- measurements ----------------------------------------------------------------------------


async def open_many(target: Target, users: list[int], concurrency: int = 200) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(user: int) -> ClientConnection:
        async with gate:
            return await target.open(user)

    return list(await asyncio.gather(*(one(u) for u in users)))


async def drain(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:
        pass


async def latency(target: Target, a: int, b: int, samples: int) -> tuple[float, float]:
    wa, wb = await target.open(a), await target.open(b)
    call_id = await target.start_call(a, b, wa, wb)
    times: list[float] = []
    for _ in range(samples):
        sent = time.perf_counter_ns()
        await wa.send(target.signal(call_id, b, sent))
        await until(wb, "ice_candidate")
        times.append((time.perf_counter_ns() - sent) / 1e6)
    await target.end_call(call_id, wa)
    await wa.close()
    await wb.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


Call = tuple[ClientConnection, ClientConnection, str, int]  # caller, callee, call id, callee id


async def start_calls(
    target: Target, pairs: list[tuple[int, int]]
) -> tuple[list[ClientConnection], list[Call]]:
    """Open both sockets of every pair and put each pair in an active call."""
    sockets = await open_many(target, [u for pair in pairs for u in pair])
    calls = []
    for n, (a, b) in enumerate(pairs):
        wa, wb = sockets[2 * n], sockets[2 * n + 1]
        calls.append((wa, wb, await target.start_call(a, b, wa, wb), b))
    return sockets, calls


async def loaded_latency(
    target: Target, pairs: list[tuple[int, int]], rate: float, samples: int
) -> tuple[float, float, float]:
    """Probe latency of the first pair while the others send `rate` frames/s in all, paced.

    Returns p50, p99 and the background rate actually delivered (frames received per second).
    """
    (a, b), background = pairs[0], pairs[1:]
    sockets, calls = await start_calls(target, background)
    tick = 0.01
    per_tick = rate * tick / len(calls)
    received = 0
    done = asyncio.Event()

    async def count(ws: ClientConnection) -> None:
        nonlocal received
        try:
            async for _ in ws:
                received += 1
        except Exception:
            pass

    async def pace(wx: ClientConnection, call_id: str, y: int) -> None:
        frame = target.signal(call_id, y, 0)
        owed = 0.0
        next_tick = time.monotonic()
        while not done.is_set():
            owed += per_tick
            while owed >= 1:
                await wx.send(frame)
                owed -= 1
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    readers = [asyncio.create_task(count(wy)) for _, wy, _, _ in calls]
    senders = [asyncio.create_task(pace(wx, c, y)) for wx, _, c, y in calls]
    await asyncio.sleep(1.0)  # let the pacing settle before sampling
    before, started = received, time.monotonic()
    p50, p99 = await latency(target, a, b, samples)
    delivered = (received - before) / (time.monotonic() - started)
    done.set()
    await asyncio.gather(*senders)
    for task in readers:
        task.cancel()
    for wx, _, call_id, _ in calls:
        await target.end_call(call_id, wx)
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    return p50, p99, delivered


async def throughput(target: Target, pairs: list[tuple[int, int]], seconds: float) -> float:
    sockets, calls = await start_calls(target, pairs)
    received = 0
    stop = time.monotonic() + seconds

    async def run(wa: ClientConnection, wb: ClientConnection, call_id: str, b: int) -> None:
        nonlocal received
        sent = got = 0
        frame = target.signal(call_id, b, 0)
        space = asyncio.Event()
        space.set()

        async def reader() -> None:
            nonlocal got, received
            async for _ in wb:
                got += 1
                received += 1
                if sent - got < WINDOW:
                    space.set()

        task = asyncio.create_task(reader())
        while time.monotonic() < stop:
            if sent - got >= WINDOW:
                space.clear()
                await space.wait()
            await wa.send(frame)
            sent += 1
        await asyncio.sleep(0.2)
        task.cancel()
        await target.end_call(call_id, wa)

    started = time.monotonic()
    await asyncio.gather(*(run(*c) for c in calls))
    rate = received / (time.monotonic() - started - 0.2)
    await asyncio.gather(*(s.close() for s in sockets))
    return rate


@dataclass
class Run:
    target: str
    sockets: int
    connect_s: float
    rss_per_socket_kb: float
    p50_ms: float
    p99_ms: float
    throughput: dict[int, float]
    loaded_p50_ms: float = 0.0
    loaded_p99_ms: float = 0.0
    loaded_rate: float = 0.0
    rss_steps_kb: list[float] = field(default_factory=list)


async def one_run(
    make: Callable[[], Target],
    sockets: int,
    pair_counts: list[int],
    seconds: float,
    load_rate: float = 0.0,
    load_pairs: int = 50,
    load_samples: int = 10000,
    priority: str = "normal",
) -> Run:
    users = max(sockets + 2 * load_pairs + 1, 2 * max(pair_counts)) + 4
    workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    target = make()
    await target.start(users, workdir)  # type: ignore[attr-defined]
    try:
        pid = target.worker_pid()
        log(f"{target.name}: opening {sockets} sockets in {MEMORY_STEPS} steps")
        idle: list[ClientConnection] = []
        readers: list[asyncio.Task[None]] = []
        points: list[tuple[int, float]] = []
        connect_s = 0.0
        ids = list(range(5, 5 + sockets))
        for step in range(MEMORY_STEPS + 1):
            # Step 0 is the warm-up (lazy imports, caches, the allocator's first arenas); the
            # marginal cost of the later steps is what one more idle socket costs.
            parts = MEMORY_STEPS + 1
            chunk = ids[len(ids) * step // parts : len(ids) * (step + 1) // parts]
            started = time.monotonic()
            opened = await open_many(target, chunk)
            connect_s += time.monotonic() - started
            idle += opened
            readers += [asyncio.create_task(drain(ws)) for ws in opened]
            points.append((len(idle), await settled_rss_kb(pid)))
        per_socket, steps = memory_slope(points)
        log(f"{target.name}: relay latency")
        p50, p99 = await latency(target, 1, 2, 2000)
        loaded = (0.0, 0.0, 0.0)
        if load_rate:
            log(f"{target.name}: relay latency with {load_rate:.0f} frames/s of load")
            # the background pairs come from the idle users' far end, so the idle sockets stay
            base = 5 + sockets + sockets % 2  # odd: rooms join (odd, odd + 1)
            pairs = [(1, 2)] + [(base + 2 * i, base + 2 * i + 1) for i in range(load_pairs)]
            with scheduled(priority, pid):
                loaded = await loaded_latency(target, pairs, load_rate, load_samples)
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in idle), return_exceptions=True)
        rates = {}
        for count in pair_counts:
            pairs = [(2 * i + 1, 2 * i + 2) for i in range(count)]
            log(f"{target.name}: throughput with {count} pairs")
            rates[count] = await throughput(target, pairs, seconds)
        return Run(
            target.name,
            sockets,
            connect_s,
            per_socket,
            p50,
            p99,
            rates,
            *loaded,
            rss_steps_kb=steps,
        )
    finally:
        target.stop()


def spread(values: list[float], digits: int = 1) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def table(runs: list[Run], pair_counts: list[int]) -> str:
    head = "| target | sockets | n | connect all (s) | RSS per socket (KB) | RSS steps (KB) "
    head += "| relay p50 (ms) "
    head += "| relay p99 (ms) | loaded p50 (ms) | loaded p99 (ms) | load delivered (msg/s) |"
    head += "".join(f" msg/s, {p} pairs |" for p in pair_counts)
    lines = [head, "|" + "---|" * (11 + len(pair_counts))]
    keys = sorted({(r.target, r.sockets) for r in runs}, key=lambda k: (k[1], k[0]))
    for name, count in keys:
        group = [r for r in runs if (r.target, r.sockets) == (name, count)]
        row = f"| {name} | {count:,} | {len(group)} | {spread([r.connect_s for r in group], 2)} | "
        row += f"{spread([r.rss_per_socket_kb for r in group])} | "
        steps = [x for r in group for x in r.rss_steps_kb]
        row += f"{min(steps):.1f}-{max(steps):.1f} | " if steps else "- | "
        row += f"{spread([r.p50_ms for r in group], 2)} | {spread([r.p99_ms for r in group], 2)} |"
        row += f" {spread([r.loaded_p50_ms for r in group], 2)} |"
        row += f" {spread([r.loaded_p99_ms for r in group], 2)} |"
        row += f" {spread([r.loaded_rate for r in group], 0)} |"
        row += "".join(f" {spread([r.throughput[p] for r in group], 0)} |" for p in pair_counts)
        lines.append(row)
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1000,5000,10000")
    parser.add_argument("--pairs", default="50,500")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--targets", default="parley,floor")
    parser.add_argument("--load-rate", type=float, default=5000.0)
    parser.add_argument("--load-pairs", type=int, default=50)
    # 10,000 probes take about 5 s under load; 2,000 (before 2026-11-29) took 1 s, and whether a
    # garbage-collector pass or a hiccup of this load generator fell in that second decided the p99.
    parser.add_argument("--load-samples", type=int, default=10000)
    parser.add_argument(
        "--priority",
        default="normal",
        choices=["normal", "realtime"],
        help="realtime: the loaded probe's phase under SCHED_FIFO (see scheduled())",
    )
    args = parser.parse_args()
    socket_counts = [int(x) for x in args.sockets.split(",")]
    pair_counts = [int(x) for x in args.pairs.split(",")]
    makers: dict[str, Callable[[], Target]] = {"parley": Parley, "floor": Floor}
    runs: list[Run] = []
    for repeat in range(args.repeats):
        for count in socket_counts:
            for name in args.targets.split(","):
                run = await one_run(
                    makers[name],
                    count,
                    pair_counts,
                    args.seconds,
                    args.load_rate,
                    args.load_pairs,
                    args.load_samples,
                    args.priority,
                )
                print(f"repeat {repeat + 1}: {run}", flush=True)
                runs.append(run)
    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load generator on the same machine\n"
    )
    print(table(runs, pair_counts))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"signaling-{stamp}.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    _run(main())
