"""What a mesh group call costs each participant, by size: uplink bitrate and CPU.

    .venv/bin/python bench/mesh.py [--sizes 2,3,4] [--seconds 15] [--size 640x480]

Starts Parley (gunicorn over HTTPS on loopback), then for each size N makes a group of N and runs
N Python peers (`python -m backend.peer join`, one process each, sending a 640x480 picture and a
tone) in one video call. Once every peer gets audio and video from all the others it waits a few
seconds, then measures over `--seconds`: each peer's CPU (from /proc, % of one core), its uplink
(RTP payload bytes sent to all its pairs, from the stats the peer prints on SIGUSR1) and the
slowest video it receives. In a mesh each participant encodes and sends its picture once per other
participant, so both grow with N - 1: the number that motivates an SFU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.grouppeers import join_process, make_group  # noqa: E402
from harness.servers import ParleyServer, make_test_certs, parley_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_S = 5.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def snapshot(peers: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    """Ask every peer for its stats so far (SIGUSR1) and read the line each prints."""
    for peer in peers:
        peer.send_signal(signal.SIGUSR1)
    lines = [await asyncio.wait_for(p.stdout.readline(), 30) for p in peers if p.stdout]
    return [json.loads(line) for line in lines]


async def joined(peer: asyncio.subprocess.Process, seconds: float = 90) -> None:
    """Read a peer's log until it says it joined the call."""
    assert peer.stderr is not None
    deadline = time.monotonic() + seconds
    while b"joined group call" not in await asyncio.wait_for(peer.stderr.readline(), seconds):
        assert time.monotonic() < deadline and not peer.stderr.at_eof(), "peer never joined"


def total(stats: dict[str, Any], field: str, kind: str | None = None) -> int:
    """Sum one per-kind counter over every pair of a peer's stats."""
    kinds = (kind,) if kind else ("audio", "video")
    return sum(pair[field][k] for pair in stats["participants"].values() for k in kinds)


async def one_size(server: ParleyServer, n: int, seconds: float, size: str) -> dict[str, Any]:
    names = [f"mesh{n}x{i}t{int(time.time())}" for i in range(n)]
    room_id = await make_group(server, names)
    options = ["--media", "video", "--size", size, "--seconds", "600"]
    peers = [await join_process(server, names[0], room_id, "--start", *options)]
    peers += [await join_process(server, name, room_id, *options) for name in names[1:]]
    try:
        for peer in peers:  # SIGUSR1 before the peer set its handler would end the process
            await joined(peer)
        deadline = time.monotonic() + 90
        while True:  # every peer gets pictures from every other one
            stats = await snapshot(peers)
            seen = [
                [p["frames_received"]["video"] for p in st["participants"].values()] for st in stats
            ]
            if all(len(frames) == n - 1 and all(frames) for frames in seen):
                break
            assert time.monotonic() < deadline, f"mesh of {n} never came up: {stats}"
            await asyncio.sleep(1)
        await asyncio.sleep(WARM_UP_S)  # the encoders' bitrate settles after the first seconds
        cpu0 = [cpu_seconds(p.pid) for p in peers]
        first = await snapshot(peers)
        await asyncio.sleep(seconds)
        cpu1 = [cpu_seconds(p.pid) for p in peers]
        last = await snapshot(peers)
    finally:
        # The numbers are in; a polite leave would first decode every queued frame (minutes, on
        # a loaded machine), so the peers just stop.
        for peer in peers:
            if peer.returncode is None:
                peer.kill()
            await peer.wait()
    spans = [b["seconds"] - a["seconds"] for a, b in zip(first, last, strict=True)]
    uplink = [
        8 * (total(b, "bytes_sent") - total(a, "bytes_sent")) / span / 1000
        for a, b, span in zip(first, last, spans, strict=True)
    ]
    fps = [
        (pb["frames_received"]["video"] - a["participants"][name]["frames_received"]["video"])
        / span
        for a, b, span in zip(first, last, spans, strict=True)
        for name, pb in b["participants"].items()
    ]
    cpu = [100 * (c1 - c0) / span for c0, c1, span in zip(cpu0, cpu1, spans, strict=True)]
    return {"n": n, "uplink_kbps": uplink, "cpu_pct": cpu, "min_fps": min(fps)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,3,4")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--size", default="640x480", help="the picture each peer sends")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="parley-mesh-bench-"))
    with parley_server(root, make_test_certs(root / "certs"), LOG_LEVEL="warning") as server:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            "| participants | connections each | uplink per participant (kbit/s, mean, min-max) "
            "| CPU per participant (% of one core, mean, max) | slowest received video (fps) |"
        )
        print("|---|---|---|---|---|")
        for n in (int(x) for x in args.sizes.split(",")):
            r = await one_size(server, n, args.seconds, args.size)
            up, cpu = r["uplink_kbps"], r["cpu_pct"]
            print(
                f"| {n} | {n - 1} | {statistics.mean(up):.0f} ({min(up):.0f}-{max(up):.0f}) "
                f"| {statistics.mean(cpu):.0f}% (max {max(cpu):.0f}%) | {r['min_fps']:.1f} |",
                flush=True,
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
