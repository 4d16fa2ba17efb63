"""Python peers in group calls: a group of accounts, and `python -m backend.peer join` processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from harness.pythonpeers import client
from harness.servers import ROOT, ParleyServer

PASSWORD = "correct horse"  # the password harness.pythonpeers.client signs in with


async def make_group(server: ParleyServer, names: list[str]) -> int:
    """Register every name; the first creates a group of them all. Return the room's id."""
    clients = [client(server, name) for name in names]
    try:
        for c in clients:
            await c.sign_in()
        room = await clients[0].api(
            "POST", "/api/groups", {"name": f"{names[0]}'s group", "usernames": names[1:]}
        )
    finally:
        for c in clients:
            await c.stop()
    return int(room["id"])


def join_command(server: ParleyServer, name: str, room_id: int, *options: str) -> list[str]:
    """The command line of `python -m backend.peer join ROOM_ID` as `name` on `server`."""
    return [
        sys.executable,
        "-m",
        "backend.peer",
        "--url",
        server.url,
        "--ca-file",
        str(server.certs / "ca.crt"),
        "join",
        str(room_id),
        "--username",
        name,
        "--password",
        PASSWORD,
        *options,
    ]


ENV = dict(os.environ, LOG_LEVEL="INFO")


async def join_process(
    server: ParleyServer, name: str, room_id: int, *options: str
) -> asyncio.subprocess.Process:
    """Start a join process; its stdout is the stats' JSON, its stderr the log."""
    return await asyncio.create_subprocess_exec(
        *join_command(server, name, room_id, *options),
        cwd=ROOT,
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def stats_of(out: bytes, err: bytes, exit_code: int | None) -> dict[str, Any]:
    """A finished join process's stats, with its `exit_code` and its `log`'s tail."""
    lines = out.decode().strip().splitlines()
    assert lines, f"no stats printed (exit {exit_code}): {err.decode()[-3000:]}"
    stats: dict[str, Any] = json.loads(lines[-1])
    stats["exit_code"] = exit_code
    stats["log"] = err.decode()[-4000:]
    return stats


async def finished(process: asyncio.subprocess.Process, seconds: float = 90) -> dict[str, Any]:
    """Wait for a join process to exit; return its stats (see stats_of)."""
    out, err = await asyncio.wait_for(process.communicate(), seconds)
    return stats_of(out, err, process.returncode)


def stopped(
    process: subprocess.Popen[bytes], seconds: float = 90
) -> tuple[bytes, bytes, int | None]:
    """SIGTERM a join process (it leaves and prints its stats); killed if it has not exited in
    `seconds`. Its stdout, stderr and exit code: never raises, so a test's own failure shows."""
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        err += f"\n(no exit {seconds:.0f} s after SIGTERM: killed)".encode()
    return out, err, process.returncode


def stats_now(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """A running join process's stats so far: SIGUSR1 makes it print them as one line."""
    assert process.stdout is not None
    process.send_signal(signal.SIGUSR1)
    line = process.stdout.readline()
    assert line, f"the join process ended (exit {process.poll()})"
    stats: dict[str, Any] = json.loads(line)
    return stats


def frames_from(stats: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Audio and video frames received so far from each participant, by username."""
    return {
        name: (pair["frames_received"]["audio"], pair["frames_received"]["video"])
        for name, pair in stats["participants"].items()
    }


def wait_frames_from(
    process: subprocess.Popen[bytes], names: set[str], seconds: float = 120
) -> None:
    """Wait until the join process's audio and video frames from each of `names` rise."""
    deadline = time.monotonic() + seconds
    first: dict[str, tuple[int, int]] = {}
    rising: set[str] = set()
    while True:
        now = frames_from(stats_now(process))
        for name in names & now.keys():
            first.setdefault(name, now[name])
            if all(a > b for a, b in zip(now[name], first[name], strict=True)):
                rising.add(name)
        if rising >= names:
            return
        assert time.monotonic() < deadline, f"frames from {names - rising} not rising: {now}"
        time.sleep(1)
