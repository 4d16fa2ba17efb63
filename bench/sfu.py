"""Group calls of 2-8, mesh beside SFU (Janus): uplink and CPU per participant, Janus's share.

    .venv/bin/python bench/sfu.py [--sizes 2,4,6,8] [--seconds 20] [--size 160x120]

For each size N and each topology it starts a Parley server of its own (GROUP_CALLS=mesh with
GROUP_CALL_MAX=8, or GROUP_CALLS=sfu pointed at a fresh Janus in a namespace of its own,
harness/janus.py), makes a group of N and runs N Python peers (bench/sfu_peer.py: `python -m
backend.peer join` that also reports the SFU publisher's bytes sent), each sending a small picture
and a tone. Once every peer receives video from every other one (or 120 s passed: a mesh that
cannot come up is measured as it is) and 5 s more, it measures over `--seconds`:

- uplink per participant: RTP payload bytes its senders sent (every mesh pair's, or the one SFU
  publisher's), from the stats each peer prints on SIGUSR1, so without headers;
- CPU per participant: utime + stime of its process from /proc/PID/stat, % of one core;
- video received: the streams (receiver, sender) that got frames in the window, the slowest, and
  the mesh connections that (re)connected in the window (aiortc drops a starved one; its
  replacement's bytes count from zero, so the uplink then reads low);
- Janus: its CPU (/proc, all threads) and its VmRSS minus its idle VmRSS before the call, each
  also divided by N; and the bytes each way on the veth pair to its namespace, divided by N (the
  media on the wire, headers and RTCP included, plus Parley's few API requests);
- the rest of the machine: busy CPU from /proc/stat less the peers and Janus (Parley's server and
  anything else running).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.grouppeers import ENV, join_command, make_group  # noqa: E402
from harness.janus import JanusServer, janus_server  # noqa: E402
from harness.servers import ParleyServer, make_test_certs, parley_server  # noqa: E402

PEER = ROOT / "bench" / "sfu_peer.py"
TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_S = 5.0
COME_UP_S = 120.0
KINDS = ("audio", "video")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """The resident set of one process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def machine_busy() -> float:
    """CPU seconds all cores spent on anything but idle and iowait so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICKS


def veth_of(address: str) -> str:
    """The name of our interface holding `address` (our end of Janus's veth pair)."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True, timeout=20
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == address:
            return fields[1].split("@")[0]
    raise RuntimeError(f"no interface has {address}")


def veth_bytes(interface: str) -> tuple[int, int]:
    """Bytes sent into Janus's namespace and received from it so far."""
    stats = Path(f"/sys/class/net/{interface}/statistics")
    return int((stats / "tx_bytes").read_text()), int((stats / "rx_bytes").read_text())


@dataclass
class Peer:
    """One join process, its log's tail, and whether it said it joined."""

    process: asyncio.subprocess.Process
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    connected: int = 0  # connections that reached "connected" (each logs its security code)
    reader: asyncio.Task[None] | None = None

    async def read_log(self) -> None:
        """Read stderr to the end (a full pipe would stall the peer), noting when it joined."""
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if "joined group call" in line:
                self.joined.set()
            elif "security code:" in line:
                self.connected += 1

    def tail(self) -> str:
        return "\n".join(self.log)


async def start_peer(server: ParleyServer, name: str, room_id: int, *options: str) -> Peer:
    """Run `python -m backend.peer join` as `name`, through bench/sfu_peer.py."""
    command = join_command(server, name, room_id, *options)
    command[1:3] = [str(PEER)]  # in place of "-m backend.peer"
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    peer = Peer(process)
    peer.reader = asyncio.ensure_future(peer.read_log())
    return peer


async def snapshot(peers: list[Peer]) -> list[dict[str, Any]]:
    """Ask every peer for its stats so far (SIGUSR1) and read the JSON line each prints."""
    for peer in peers:
        if peer.process.returncode is not None:
            raise RuntimeError(f"a peer exited ({peer.process.returncode}):\n{peer.tail()}")
        peer.process.send_signal(signal.SIGUSR1)
    out, asked = [], time.monotonic()
    for i, peer in enumerate(peers):
        assert peer.process.stdout is not None
        try:
            line = await asyncio.wait_for(peer.process.stdout.readline(), 120)
        except TimeoutError:
            raise RuntimeError(f"peer {i} printed no stats in 120 s:\n{peer.tail()}") from None
        if time.monotonic() - asked > 10:  # a peer's own loop is starved: say so
            print(f"peer {i} answered in {time.monotonic() - asked:.0f} s", file=sys.stderr)
        out.append(json.loads(line))
    return out


def sent(stats: dict[str, Any]) -> dict[str, int]:
    """RTP payload bytes a peer sent so far, per mesh pair and by the SFU publisher ("")."""
    out = {n: sum(p.get("bytes_sent", {}).values()) for n, p in stats["participants"].items()}
    return {**out, "": sum(stats.get("publish_bytes_sent", {}).values())}


def uplink_bytes(first: dict[str, Any], last: dict[str, Any]) -> int:
    """Bytes a peer sent between two stats. A connection replaced meanwhile starts from zero:
    its new count alone is taken (an underestimate, shown by the reconnections)."""
    before, after = sent(first), sent(last)
    deltas = (b - before.get(n, 0) for n, b in after.items())
    return sum(d if d >= 0 else after[n] for d, n in zip(deltas, after, strict=True))


def video_frames(stats: dict[str, Any]) -> dict[str, int]:
    """Video frames a peer received so far, per remote participant."""
    return {name: p["frames_received"]["video"] for name, p in stats["participants"].items()}


def streams_with_video(stats: list[dict[str, Any]]) -> int:
    return sum(1 for st in stats for frames in video_frames(st).values() if frames > 0)


@dataclass
class Janus:
    """What is measured of Janus: its pid, its idle RSS and our end of its veth pair."""

    pid: int
    idle_rss: float
    veth: str


@dataclass
class Row:
    topology: str
    n: int
    uplink_kbps: list[float]
    cpu_pct: list[float]
    streams: int  # (receiver, sender) pairs whose video moved in the window
    min_fps: float
    rest_pct: float
    came_up_s: float | None  # None: not every stream had video within COME_UP_S
    reconnections: int  # connections that (re)connected in the window
    janus_cpu_pct: float | None = None
    janus_rss: float | None = None
    janus_rss_growth: float | None = None
    wire_in_kbps: float | None = None  # into Janus, per participant
    wire_out_kbps: float | None = None


async def measure(
    server: ParleyServer,
    topology: str,
    n: int,
    seconds: float,
    size: str,
    janus: Janus | None,
    dump: Path | None = None,
) -> Row:
    """Run one call of `n` peers and measure it (see the module's docstring)."""
    names = [f"{topology}{n}x{i}t{int(time.time())}" for i in range(n)]
    room_id = await make_group(server, names)
    options = ["--media", "video", "--size", size, "--seconds", "600", "--wait", "120"]
    began = time.monotonic()
    peers = [await start_peer(server, names[0], room_id, "--start", *options)]
    peers += [await start_peer(server, name, room_id, *options) for name in names[1:]]
    phase = "joining"
    try:
        for peer in peers:  # SIGUSR1 before the peer set its handler would end the process
            await asyncio.wait_for(peer.joined.wait(), 120)
        came_up: float | None = None
        phase = "waiting for video"
        while came_up is None and time.monotonic() - began < COME_UP_S:
            if streams_with_video(await snapshot(peers)) == n * (n - 1):
                came_up = time.monotonic() - began
            else:
                await asyncio.sleep(1)
        await asyncio.sleep(WARM_UP_S)  # the encoders' bitrate settles after the first seconds
        phase = "measuring"
        first = await snapshot(peers)
        t0, busy0 = time.monotonic(), machine_busy()
        cpu0 = [cpu_seconds(p.process.pid) for p in peers]
        connected0 = sum(p.connected for p in peers)
        janus0 = cpu_seconds(janus.pid) if janus else 0.0
        wire0 = veth_bytes(janus.veth) if janus else (0, 0)
        await asyncio.sleep(seconds)
        cpu1 = [cpu_seconds(p.process.pid) for p in peers]
        reconnections = sum(p.connected for p in peers) - connected0
        janus1 = cpu_seconds(janus.pid) if janus else 0.0
        wire1 = veth_bytes(janus.veth) if janus else (0, 0)
        rss = rss_mb(janus.pid) if janus else 0.0
        t1, busy1 = time.monotonic(), machine_busy()
        last = await snapshot(peers)
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            (dump / f"{topology}-{n}.json").write_text(json.dumps({"first": first, "last": last}))
    except Exception as error:
        stuck = [p for p in peers if not p.joined.is_set()] or peers[-1:]
        raise RuntimeError(f"{topology} of {n}, {phase}: {error!r}\n{stuck[0].tail()}") from error
    finally:
        # The numbers are in; a polite leave would first decode every queued frame (minutes, on
        # a loaded machine), so the peers just stop.
        for peer in peers:
            if peer.process.returncode is None:
                peer.process.kill()
            await peer.process.wait()
            if peer.reader is not None:
                await peer.reader
    span = t1 - t0
    spans = [b["seconds"] - a["seconds"] for a, b in zip(first, last, strict=True)]
    uplink = [8 * uplink_bytes(a, b) / s / 1000 for a, b, s in zip(first, last, spans, strict=True)]
    fps = [
        (frames - video_frames(a).get(name, 0)) / s
        for a, b, s in zip(first, last, spans, strict=True)
        for name, frames in video_frames(b).items()
    ]
    fps += [0.0] * (n * (n - 1) - len(fps))  # a sender a receiver never heard of
    cpu = [100 * (c1 - c0) / span for c0, c1 in zip(cpu0, cpu1, strict=True)]
    janus_pct = 100 * (janus1 - janus0) / span
    rest = 100 * (busy1 - busy0) / span - sum(cpu) - janus_pct
    streams = sum(1 for f in fps if f > 0)
    row = Row(topology, n, uplink, cpu, streams, min(fps), rest, came_up, reconnections)
    if janus is not None:
        row.janus_cpu_pct, row.janus_rss = janus_pct, rss
        row.janus_rss_growth = rss - janus.idle_rss
        row.wire_in_kbps = 8 * (wire1[0] - wire0[0]) / span / 1000 / n
        row.wire_out_kbps = 8 * (wire1[1] - wire0[1]) / span / 1000 / n
    return row


@contextmanager
def topology_server(
    root: Path, certs: Path, topology: str, n: int, max_size: int
) -> Iterator[tuple[ParleyServer, Janus | None]]:
    """A Parley server for one run; for the SFU, a fresh Janus behind it."""
    work = root / f"{topology}-{n}"
    if topology == "mesh":
        env = {"GROUP_CALLS": "mesh", "GROUP_CALL_MAX": str(max_size), "LOG_LEVEL": "warning"}
        with parley_server(work, certs, **env) as server:
            yield server, None
        return
    with janus_server(work / "janus") as running:
        env = {**running.env(), "GROUP_CALLS": "sfu", "SFU_CALL_MAX": str(max_size)}
        with parley_server(work, certs, LOG_LEVEL="warning", **env) as server:
            yield server, janus_of(running)


def janus_of(running: JanusServer) -> Janus:
    assert running.process is not None
    pid = running.process.pid  # `ip netns exec` execs Janus in its own place
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert comm == "janus", f"pid {pid} is {comm}, not janus"
    return Janus(pid, rss_mb(pid), veth_of(running.ns.outer))


HEADER = (
    "| participants | topology | connections each | uplink per participant (kbit/s, mean, "
    "min-max) | CPU per participant (% of one core, mean, max) | streams with video | slowest "
    "received video (fps) | Janus CPU (% of one core; per participant) | Janus RSS (MB; growth "
    "per participant) | Janus veth in / out per participant (kbit/s) | rest of the machine "
    "(% of one core) |\n" + "|---" * 11 + "|"
)


def markdown(r: Row) -> str:
    """One row of the table."""
    up, cpu = r.uplink_kbps, r.cpu_pct
    streams = f"{r.streams}/{r.n * (r.n - 1)}" + ("" if r.came_up_s else " (never all up)")
    streams += f", {r.reconnections} reconnections" if r.reconnections else ""
    janus = rss = wire = "-"
    if r.janus_cpu_pct is not None and r.janus_rss is not None and r.janus_rss_growth is not None:
        janus = f"{r.janus_cpu_pct:.1f}% ({r.janus_cpu_pct / r.n:.1f}%)"
        rss = f"{r.janus_rss:.0f} (+{r.janus_rss_growth / r.n:.1f})"
        wire = f"{r.wire_in_kbps:.0f} / {r.wire_out_kbps:.0f}"
    return (
        f"| {r.n} | {r.topology} | {r.n - 1 if r.topology == 'mesh' else 2} "
        f"| {statistics.mean(up):.0f} ({min(up):.0f}-{max(up):.0f}) "
        f"| {statistics.mean(cpu):.0f}% (max {max(cpu):.0f}%) | {streams} | {r.min_fps:.1f} "
        f"| {janus} | {rss} | {wire} | {r.rest_pct:.0f}% |"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="2,4,6,8")
    parser.add_argument("--topologies", default="mesh,sfu")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--size", default="160x120", help="the picture each peer sends")
    parser.add_argument("--dump", type=Path, help="a folder for each run's raw stats (JSON)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="parley-sfu-bench-"))
    certs = make_test_certs(root / "certs")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average before: {load()}")
    print(HEADER, flush=True)
    notes = []
    for n in sizes:
        for topology in args.topologies.split(","):
            for attempt in (1, 2):  # a run that fails is tried once more on fresh servers
                before = load()
                try:
                    with topology_server(root, certs, topology, n, max(8, *sizes)) as (s, j):
                        row = await measure(s, topology, n, args.seconds, args.size, j, args.dump)
                except RuntimeError as error:
                    notes.append(f"{topology} {n}, attempt {attempt} failed: {error}")
                    print(notes[-1], file=sys.stderr, flush=True)
                    continue
                print(markdown(row), flush=True)
                up = f"{row.came_up_s:.0f} s" if row.came_up_s else "never"
                notes.append(f"{topology} {n}: all video up after {up}; load average {before}")
                break
            else:
                print(f"| {n} | {topology} | failed twice (see below) |", flush=True)
    print(f"load average after: {load()}")
    print("\n".join(notes))


if __name__ == "__main__":
    asyncio.run(main())
