"""Run bench/loadgen.py against a local Parley (one gevent worker, HTTPS) on SQLite or PostgreSQL.

    .venv/bin/python bench/loadgen_local.py [--databases sqlite,postgresql] [--repeats 3]
                                            [--pairs 20] [--rate 10] [--duration 20]
                                            [--chat-every 10] [--phase random]
                                            [--priority normal,realtime]

Each run starts a fresh server and database the way the tests do (harness/servers.py: the real
migrations; PostgreSQL is a throwaway cluster with fsync off), signs the generator's accounts in
(a first, unmeasured pass: argon2 is deliberately slow), runs the load generator against it and
stops both. Prints one JSON line per run and a Markdown table: relay latency, chat messages sent,
acknowledged, delivered and stored (counted in the database afterwards), the worker's CPU per
frame sent, the generator's own loop lag, and the machine's load average.

`--priority realtime` (root, or CAP_SYS_NICE) runs the measured processes (the gunicorn worker,
PostgreSQL and the generator) under SCHED_FIFO for the load phase only, after sign-in. On a
machine shared with other work this shows what the code does when it is not waiting for a core
behind someone else's processes, as on a host of its own; it lifts nothing that Parley itself
does. Runs of several priorities interleave (A, B, A, B), so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.servers import make_test_certs, parley_server, postgres_server  # noqa: E402

RT_PRIORITY = 10  # SCHED_FIFO, above every ordinary process, below the kernel's own threads


def children(pid: int) -> list[int]:
    """Return the child processes of pid (of all its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Return pid and every process below it."""
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo += children(current)
    return seen


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def realtime(pids: list[int]) -> None:
    """Put every thread of these processes under SCHED_FIFO (children made later inherit it)."""
    param = os.sched_param(RT_PRIORITY)
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setscheduler(int(task.name), os.SCHED_FIFO, param)


def stored_chat(database_url: str) -> int:
    """Count the chat messages (not call records) in the server's database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            counted = conn.execute(text("SELECT count(*) FROM messages WHERE kind = 'text'"))
            return int(counted.one()[0])
    finally:
        engine.dispose()


def one_run(database: str, priority: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a server on a fresh database, load it, and return the generator's result."""
    root = Path(tempfile.mkdtemp(prefix="parley-loadgen-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        url = None
        postmaster = None
        if database == "postgresql":
            pg = stack.enter_context(postgres_server())
            url = stack.enter_context(pg.database())
            pidfile = pg.datadir / "data" / "postmaster.pid"
            postmaster = int(pidfile.read_text().split()[0])
        server = stack.enter_context(
            parley_server(root, make_test_certs(root / "certs"), url, LOG_LEVEL="warning")
        )
        assert server.process is not None
        command = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--url", server.url,
                   "--ca", str(server.certs / "ca.crt"), "--state", str(root / "cookies.json"),
                   "--pairs", str(args.pairs)]  # fmt: skip
        subprocess.run([*command, "--sign-in-only"], capture_output=True, timeout=600, check=True)
        (worker,) = children(server.process.pid)
        measured = [worker] + (descendants(postmaster) if postmaster else [])
        before: Callable[[], None] | None = None
        if priority == "realtime":
            realtime(measured)

            def before() -> None:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))

        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(worker)
        done = subprocess.run(
            [*command, "--rate", str(args.rate), "--duration", str(args.duration),
             "--chat-every", str(args.chat_every), "--max-messages", "1000000",
             "--phase", args.phase],
            capture_output=True, text=True, timeout=600, check=True, preexec_fn=before,
        )  # fmt: skip
        worker_cpu = cpu_seconds(worker) - cpu_before
        load_after = os.getloadavg()[0]
        result: dict[str, Any] = json.loads(done.stdout)
        sent = result["frames_sent"]
        result.update(
            database=database,
            priority=priority,
            chat_sent=sent // args.chat_every if args.chat_every else 0,
            chat_stored=stored_chat(server.database_url),
            worker_cpu_s=round(worker_cpu, 2),
            worker_cpu_ms_per_frame=round(1000 * worker_cpu / sent, 3) if sent else None,
            load=[round(load_before, 2), round(load_after, 2)],
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--chat-every", type=int, default=10)
    parser.add_argument("--phase", default="random", choices=("random", "lockstep"))
    parser.add_argument(
        "--priority",
        default="normal",
        help="comma-separated: normal, realtime (SCHED_FIFO for the load phase; see above)",
    )
    args = parser.parse_args()
    priorities = args.priority.split(",")
    if not set(priorities) <= {"normal", "realtime"}:
        parser.error("--priority takes normal and/or realtime")
    runs = []
    for _ in range(args.repeats):
        for database in args.databases.split(","):
            for priority in priorities:
                run = one_run(database, priority, args)
                print(json.dumps(run), flush=True)
                runs.append(run)
    print("\n| database | priority | relay p50 (ms) | relay p99 (ms) | relay max (ms) | "
          "frames sent | chat sent / acked / delivered / stored | errors | "
          "worker CPU per frame (ms) | generator loop lag p99 (ms) | "
          "load average (start, end) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        relay = r["relay_ms"]
        print(
            f"| {r['database']} | {r['priority']} | {relay['p50']} | {relay['p99']} | "
            f"{relay['max']} | {r['frames_sent']} | {r['chat_sent']} / {r['chat_acked']} / "
            f"{r['chat_delivered']} / {r['chat_stored']} | {r['errors'] or 'none'} | "
            f"{r['worker_cpu_ms_per_frame']} | {r['generator']['loop_lag_ms']['p99']} | "
            f"{r['load'][0]}, {r['load'][1]} |"
        )


if __name__ == "__main__":
    main()
