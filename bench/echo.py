"""How many echo-test calls the bot serves at once, and its CPU per call.

    .venv/bin/python bench/echo.py [--calls 1,2,4,8] [--seconds 15] [--media video]

Starts Parley (gunicorn over HTTPS on loopback) and the echo bot, then for each N places N calls
to Echo test at once from Python peers (aiortc, in this process) and reports, over the middle of
the calls: the bot's CPU (% of one core, from /proc), CPU per call, and whether every caller got
its media back (audio and video frames received). The callers run on the same two cores, so the
bot's share is what matters; a call "keeps up" when its returned video stays above 10 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.peer.client import ParleyClient  # noqa: E402
from backend.peer.peer import Peer, PeerCall  # noqa: E402
from harness.servers import make_test_certs, parley_server  # noqa: E402

ECHO_PASSWORD = "bench-echo-password"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def one_round(
    url: str, ca: str, bot_pid: int, calls: int, seconds: float, media: str
) -> dict:
    clients = [
        ParleyClient(url, f"bench{calls}x{i}{int(time.time())}", "bench-password", ca)
        for i in range(calls)
    ]
    peers = [Peer(c) for c in clients]
    tasks = []
    for client, peer in zip(clients, peers, strict=True):
        await client.sign_in()
        tasks.append(asyncio.ensure_future(client.run(peer.handle)))
        await asyncio.wait_for(client.connected.wait(), 10)
    placed: list[PeerCall] = await asyncio.gather(*(p.call("echo", media) for p in peers))
    await asyncio.gather(*(asyncio.wait_for(c.answered.wait(), 30) for c in placed))
    await asyncio.sleep(3)  # warm up: the delay line fills, encoders settle
    before = {c.id: dict(c.received) for c in placed}
    cpu0, t0 = cpu_seconds(bot_pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_seconds(bot_pid), time.monotonic()
    fps = [(c.received["video"] - before[c.id]["video"]) / (t1 - t0) for c in placed]
    audio = [(c.received["audio"] - before[c.id]["audio"]) / (t1 - t0) for c in placed]
    for peer in peers:
        await peer.close()
    for client in clients:
        await client.stop()
    for task in tasks:
        task.cancel()
    busy = 100 * (cpu1 - cpu0) / (t1 - t0)
    return {
        "calls": calls,
        "bot_cpu_pct": busy,
        "cpu_per_call_pct": busy / calls,
        "min_video_fps": min(fps) if media == "video" else None,
        "min_audio_frames_per_s": min(audio),
        "all_kept_up": all(a > 40 for a in audio)
        and (media != "video" or all(f >= 10 for f in fps)),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--media", default="video", choices=["audio", "video"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="parley-echo-bench-"))
    certs = make_test_certs(root / "certs")
    with parley_server(root, certs, ECHO_PASSWORD=ECHO_PASSWORD, LOG_LEVEL="warning") as server:
        env = dict(
            os.environ,
            PARLEY_URL=server.url,
            PARLEY_CA_FILE=str(certs / "ca.crt"),
            ECHO_PASSWORD=ECHO_PASSWORD,
            LOG_LEVEL="WARNING",
        )
        bot = subprocess.Popen([sys.executable, "-m", "backend.peer", "echo"], cwd=ROOT, env=env)
        try:
            await asyncio.sleep(4)
            print(
                "| calls at once | echo bot CPU (% of one core) | CPU per call "
                "| slowest returned video (fps) | all kept up |"
            )
            print("|---|---|---|---|---|")
            for n in (int(x) for x in args.calls.split(",")):
                r = await one_round(
                    server.url, str(certs / "ca.crt"), bot.pid, n, args.seconds, args.media
                )
                fps = f"{r['min_video_fps']:.1f}" if r["min_video_fps"] is not None else "-"
                print(
                    f"| {n} | {r['bot_cpu_pct']:.0f}% | {r['cpu_per_call_pct']:.0f}% | {fps} | "
                    f"{'yes' if r['all_kept_up'] else 'no'} |",
                    flush=True,
                )
        finally:
            bot.terminate()
            bot.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
