"""Scale-out with Redis: one worker, one worker on Redis, two workers, two instances.

    .venv/bin/python bench/scaleout.py [--pairs 50,200] [--seconds 5] [--repeats 3]

Each layout serves the same load as bench/signaling.py: relay latency (one pair in an active
call sends ice_candidate frames one at a time; p50/p99) and throughput (P pairs in active calls,
64 frames in flight each). Layouts:
- `1 worker`: no Redis (the embedded default);
- `1 worker + Redis`: the same worker with REDIS_URL (its cost alone);
- `2 workers + Redis`: WEB_CONCURRENCY=2 on one port (the kernel spreads the sockets);
- `2 instances + Redis`: two gunicorns on two ports, every pair split across them.
A redis-server is started on a free loopback port. Everything runs on 127.0.0.1 without TLS.
Prints a Markdown table (median and min-max over repeats) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from signaling import (  # noqa: E402
    BIN,
    ROOT,
    Parley,
    free_port,
    latency,
    log,
    spread,
    throughput,
    wait_port,
)


class Layout(Parley):
    """Parley in one of the layouts: `instances` gunicorns of `workers` workers each."""

    def __init__(self, name: str, workers: int, instances: int, redis_url: str) -> None:
        self.name = name
        self.workers = workers
        self.instances = instances
        self.redis_url = redis_url
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self, users: int, workdir: Path) -> None:
        base = self.environment(workdir, self.workers)
        if self.redis_url:
            base.update(REDIS_URL=self.redis_url, REDIS_PREFIX=f"bench{time.time_ns()}")
        self.prepare(base, users)
        command = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "backend:create_app()"]
        for _ in range(self.instances):
            port = free_port()
            self.ports.append(port)
            with (workdir / f"gunicorn-{port}.log").open("ab") as out:
                self.processes.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        env={**base, "PORT": str(port)},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        for port in self.ports:
            await wait_port(port)
        await asyncio.sleep(1.0)  # let the workers boot and one take the call lease

    async def open(self, user: int) -> ClientConnection:
        # Pairs are (odd, even): with two instances every pair spans both.
        self.port = self.ports[user % len(self.ports)]
        ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws",
            origin=f"http://127.0.0.1:{self.port}",  # type: ignore[arg-type]
            additional_headers={"Cookie": f"parley_session={self.cookies[user]}"},
            max_size=None,
            open_timeout=60,
        )
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
        return ws

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Result:
    layout: str
    p50_ms: float
    p99_ms: float
    throughput: dict[int, float]


async def one_run(layout: Layout, pair_counts: list[int], seconds: float) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="parley-scale-"))
    log(f"{layout.name}: logs in {workdir}")
    await layout.start(2 * max(pair_counts) + 4, workdir)
    try:
        log(f"{layout.name}: relay latency")
        p50, p99 = await latency(layout, 1, 2, 2000)
        rates = {}
        for count in pair_counts:
            log(f"{layout.name}: throughput with {count} pairs")
            rates[count] = await throughput(
                layout, [(2 * i + 1, 2 * i + 2) for i in range(count)], seconds
            )
        return Result(layout.name, p50, p99, rates)
    finally:
        layout.stop()


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    asyncio.run(wait_port(port))
    return process, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="50,200")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layouts", default="1w,1w+redis,2w+redis,2i+redis")
    args = parser.parse_args()
    pair_counts = [int(x) for x in args.pairs.split(",")]
    redis_proc, url = start_redis(Path(tempfile.mkdtemp(prefix="parley-redis-")))
    layouts = {
        "1w": lambda: Layout("1 worker", 1, 1, ""),
        "1w+redis": lambda: Layout("1 worker + Redis", 1, 1, url),
        "2w+redis": lambda: Layout("2 workers + Redis", 2, 1, url),
        "2i+redis": lambda: Layout("2 instances + Redis", 1, 2, url),
    }
    results: list[Result] = []
    try:
        for repeat in range(args.repeats):
            for key in args.layouts.split(","):
                result = asyncio.run(one_run(layouts[key](), pair_counts, args.seconds))
                print(f"repeat {repeat + 1}: {result}", flush=True)
                results.append(result)
    finally:
        redis_proc.terminate()
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load generator on the same machine\n"
    )
    head = "| layout | n | relay p50 (ms) | relay p99 (ms) |"
    head += "".join(f" msg/s, {p} pairs |" for p in pair_counts)
    print(head)
    print("|" + "---|" * (4 + len(pair_counts)))
    for name in dict.fromkeys(r.layout for r in results):
        group = [r for r in results if r.layout == name]
        row = f"| {name} | {len(group)} | {spread([r.p50_ms for r in group], 2)} | "
        row += f"{spread([r.p99_ms for r in group], 2)} |"
        row += "".join(f" {spread([r.throughput[p] for r in group], 0)} |" for p in pair_counts)
        print(row)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"scaleout-{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
