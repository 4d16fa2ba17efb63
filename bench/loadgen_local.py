"""Run bench/loadgen.py against a local Parley (one gevent worker, HTTPS) on SQLite or PostgreSQL.

    .venv/bin/python bench/loadgen_local.py [--databases sqlite,postgresql] [--repeats 3]
                                            [--pairs 20] [--rate 10] [--duration 20]
                                            [--chat-every 10] [--phase random]

Each run starts a fresh server and database the way the tests do (tests/servers.py: the real
migrations; PostgreSQL is a throwaway cluster with fsync off), runs the load generator against it
and stops both. Prints one JSON line per run and a Markdown table of relay latency and chat
acknowledgements; the machine's load average is recorded with each run, since the generator
shares the cores with the server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import make_test_certs, parley_server, postgres_server  # noqa: E402


def one_run(database: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start a server on a fresh database, load it, and return the generator's result."""
    root = Path(tempfile.mkdtemp(prefix="parley-loadgen-"))
    with ExitStack() as stack:
        url = None
        if database == "postgresql":
            pg = stack.enter_context(postgres_server())
            url = stack.enter_context(pg.database())
        server = stack.enter_context(
            parley_server(root, make_test_certs(root / "certs"), url, LOG_LEVEL="warning")
        )
        load_before = os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--url", server.url,
             "--ca", str(server.certs / "ca.crt"), "--state", str(root / "cookies.json"),
             "--pairs", str(args.pairs), "--rate", str(args.rate),
             "--duration", str(args.duration), "--chat-every", str(args.chat_every),
             "--max-messages", "1000000", "--phase", args.phase],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(done.stdout)
        result.update(database=database, load=[round(load_before, 2), round(os.getloadavg()[0], 2)])
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
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        for database in args.databases.split(","):
            run = one_run(database, args)
            print(json.dumps(run), flush=True)
            runs.append(run)
    print("\n| database | relay p50 (ms) | relay p99 (ms) | relay max (ms) | frames sent | "
          "chat acked / delivered | errors | load average (start, end) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        relay = r["relay_ms"]
        print(
            f"| {r['database']} | {relay['p50']} | {relay['p99']} | {relay['max']} | "
            f"{r['frames_sent']} | {r['chat_acked']} / {r['chat_delivered']} | "
            f"{r['errors'] or 'none'} | {r['load'][0]}, {r['load'][1]} |"
        )


if __name__ == "__main__":
    main()
