"""Python peers in group calls: a group of accounts, and `python -m backend.peer join` processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
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


async def join_process(
    server: ParleyServer, name: str, room_id: int, *options: str
) -> asyncio.subprocess.Process:
    """Start `python -m backend.peer join ROOM_ID` as `name`; its stdout is the stats' JSON."""
    return await asyncio.create_subprocess_exec(
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
        cwd=ROOT,
        env=dict(os.environ, LOG_LEVEL="INFO"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process, seconds: float = 90) -> dict[str, Any]:
    """Wait for a join process to exit; return its stats, with `exit_code` and its `log`'s tail."""
    out, err = await asyncio.wait_for(process.communicate(), seconds)
    lines = out.decode().strip().splitlines()
    assert lines, f"no stats printed (exit {process.returncode}): {err.decode()[-3000:]}"
    stats: dict[str, Any] = json.loads(lines[-1])
    stats["exit_code"] = process.returncode
    stats["log"] = err.decode()[-4000:]
    return stats
