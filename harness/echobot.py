"""The echo-test bot as its own process, signed in to a test server as a browser would be."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.servers import ROOT, ParleyServer


@contextmanager
def echo_bot(
    server: ParleyServer, password: str, log: Path, max_seconds: int
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m backend.peer echo` on `server`, logging to `log`; yield once signed in."""
    env = dict(
        os.environ,
        PARLEY_URL=server.url,
        PARLEY_CA_FILE=str(server.certs / "ca.crt"),
        ECHO_PASSWORD=password,
        ECHO_MAX_SECONDS=str(max_seconds),
    )
    with log.open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "backend.peer", "echo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60  # importing aiortc alone takes seconds on a slow machine
        while time.monotonic() < deadline and "signed in as" not in log.read_text():
            time.sleep(0.2)
        assert "signed in as" in log.read_text(), log.read_text()[-2000:]
        yield bot
    finally:
        bot.terminate()
        bot.wait(10)
