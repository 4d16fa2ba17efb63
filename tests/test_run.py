"""`make run` (`python -m backend.run`): a short, true account, quiet libraries, a clean Ctrl-C, no
secret left behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.cli import local_addresses
from backend.peer.group import GroupCall, GroupPeer
from backend.sfu.janus import Janus, plugin_data
from backend.sfu.videoroom import PLUGIN
from harness import aio
from harness.grouppeers import make_group
from harness.pythonpeers import client, online
from harness.servers import BIN, ROOT, ParleyServer, free_port

# A slow, shared 2-core machine: generous deadlines, checked by polling.
START_S = 120
CALL_S = 90
STOP_S = 60
# "401" as an HTTP status, not inside a pid ("[401]"), a port, a timestamp (",401") or a number.
HTTP_401 = re.compile(r"(?<![\[\d,:.])401(?![\]\d])")
LIBRARY_LOGGER = re.compile(r"\b(aioice|aiortc|httpx|httpcore|websockets)(\.\w+)*\b.*")


class MakeRun:
    """`python -m backend.run` in its own process group, as a terminal runs it; output collected."""

    def __init__(self, root: Path, path: str | None = None, **settings: str) -> None:
        self.root = root
        self.port = free_port()
        self.instance = root / "instance"
        self.certs = root / "certs"
        self.tmp = root / "tmp"  # the run's TMPDIR: a scan of it for the secret is precise
        self.tmp.mkdir()
        ours = ("TURN_", "REDIS_", "JANUS_", "GROUP_CALL", "SFU_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        for name in ("DATABASE_URL", "SECRET_KEY", "ECHO_PASSWORD", "LOG_LEVEL", "PARLEY_URL"):
            env.pop(name, None)
        env.update(
            HOST="127.0.0.1",
            PORT=str(self.port),
            PARLEY_INSTANCE=str(self.instance),
            CERTS_DIR=str(self.certs),
            TMPDIR=str(self.tmp),
            AUTH_RATE_LIMIT="10000 per minute",
            PYTHONUNBUFFERED="1",
            **settings,
        )
        if path is not None:
            env["PATH"] = path
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend.run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: Callable[[], bool], timeout: float, doing: str) -> None:
        """Poll until `what` holds; fail with the output if the run exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"make run exited ({self.process.returncode}) {doing}:\n{self.output}")
            time.sleep(0.1)
        pytest.fail(f"timed out {doing}:\n{self.output}")

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def answers(self) -> bool:
        """True once the server answers HTTPS with the run's own CA (401 is an answer)."""
        if not (self.certs / "ca.crt").exists():
            return False
        context = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        try:
            urllib.request.urlopen(f"{self.url}/api/me", context=context, timeout=60)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def wait_ready(self) -> None:
        self.wait_for(lambda: self.said(self.url), START_S, "before printing its URL")
        self.wait_for(self.answers, START_S, "before the server answered")
        self.wait_for(lambda: self.said("echo bot signed in"), START_S, "before the bot signed in")

    def ctrl_c(self) -> int:
        """Send SIGINT to the process group, as a terminal's Ctrl-C does; return the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"make run did not stop within {STOP_S}s of Ctrl-C:\n{self.output}")
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        """Stop a run a failed test left going, and release its pipe.

        Ctrl-C first, so make run stops its own servers (they run in sessions of their own and
        a SIGKILL to its group would leave them going, holding the pipe); SIGKILL if it hangs.
        """
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(10)
        assert self.process.stdout is not None
        if not self._reader.is_alive():  # else closing would wait on the reader's lock
            self.process.stdout.close()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[..., MakeRun]]:
    runs: list[MakeRun] = []

    def start(path: str | None = None, **settings: str) -> MakeRun:
        runs.append(MakeRun(tmp_path, path, **settings))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


def files_under(root: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def holding(secret: str, roots: list[Path]) -> list[Path]:
    """Return the regular files under roots whose bytes contain secret."""
    found = []
    needle = secret.encode()
    for root in roots:
        for path in files_under(root):
            try:
                if path.stat().st_size < 4 * 2**20 and needle in path.read_bytes():
                    found.append(path)
            except OSError:  # another process's temp file came and went
                continue
    return found


def turn_secret(root: Path) -> tuple[Path, str]:
    """Find the running coturn's configuration under root and return it with its secret."""
    for path in files_under(root):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        match = re.search(r"^static-auth-secret=(\S+)$", text, re.MULTILINE)
        if match:
            return path, match.group(1)
    pytest.fail(f"no coturn configuration with a secret under {root}")


def janus_config(root: Path) -> tuple[Path, str, str]:
    """Find the running Janus's configuration folder under root; return it and its two secrets."""
    for path in files_under(root):
        if path.name == "janus.jcfg":
            api = re.search(r'api_secret = "([^"]+)"', path.read_text())
            plugin = (path.parent / "janus.plugin.videoroom.jcfg").read_text()
            admin = re.search(r'admin_key = "([^"]+)"', plugin)
            assert api and admin, f"no secrets in {path.parent}"
            return path.parent, api.group(1), admin.group(1)
    pytest.fail(f"no Janus configuration under {root}")


def janus_rooms(url: str, api_secret: str, admin_key: str) -> list[dict[str, Any]]:
    """The rooms on that Janus (private ones too: the admin key shows them), with their feeds."""
    api = Janus(url, api_secret, timeout=10)
    session = api.session()
    try:
        handle = session.attach(PLUGIN, lambda event: None)
        listed = session.message(handle, {"request": "list", "admin_key": admin_key})
        found = []
        for room in plugin_data(listed).get("list") or []:
            feeds = session.message(handle, {"request": "listparticipants", "room": room["room"]})
            found.append({**room, "feeds": len(plugin_data(feeds)["participants"])})
        return found
    finally:
        session.destroy()
        api.close()


async def until(check: Callable[[], bool], why: Callable[[], str], seconds: float = CALL_S) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)


def heard(call: GroupCall) -> dict[int, dict[str, int]]:
    """Frames this peer got through Janus, per sender's user id."""
    return {} if call.sfu is None else {uid: dict(f) for uid, f in call.sfu.frames.items()}


async def hears(call: GroupCall, other: int) -> None:
    """Wait until this peer has had more than 20 audio frames from `other` through Janus."""
    await until(
        lambda: heard(call).get(other, {}).get("audio", 0) > 20,
        lambda: f"no sound from user {other} through Janus: {heard(call)}",
    )


async def sfu_call(server: ParleyServer, rooms: Callable[[], list[dict[str, Any]]]) -> None:
    """Two Python peers in a group call through make run's Janus; each hears the other."""
    names = ["rjann", "rjbob"]
    room_id = await make_group(server, names)
    clients = [client(server, name) for name in names]
    ann, bob = peers = [GroupPeer(c, "audio") for c in clients]
    tasks = [await online(c, p.handle) for c, p in zip(clients, peers, strict=True)]
    try:
        call = await ann.start(room_id, "audio")
        await asyncio.wait_for(call.joined.wait(), 30)
        # group_call_joined said "topology": "sfu": the server was given make run's Janus.
        assert call.sfu is not None, "the call is a mesh: the server has no Janus"
        live = await bob.live_call(room_id, 30)
        assert live == call.id
        bob_call = await bob.join(room_id, call.id, "audio")
        await asyncio.wait_for(bob_call.joined.wait(), 30)
        # The room is on that Janus, both publishing into it (checked with its own secrets).
        found: list[dict[str, Any]] = []

        async def both_in() -> bool:
            found[:] = await asyncio.to_thread(rooms)
            return len(found) == 1 and found[0]["feeds"] == 2

        deadline = time.monotonic() + CALL_S
        while not await both_in():
            assert time.monotonic() < deadline, f"Janus's rooms: {found}"
            await asyncio.sleep(0.3)
        if not local_addresses():
            return  # Janus offers candidates on this host's interfaces only, never on loopback
        ann_id, bob_id = (p.me.id for p in peers if p.me is not None)
        await hears(call, bob_id)
        await hears(bob_call, ann_id)
    finally:
        for peer in peers:
            await peer.close()
        for c, task in zip(clients, tasks, strict=True):
            await c.stop()
            task.cancel()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def echo_call(run: MakeRun) -> subprocess.CompletedProcess[str]:
    """Call the echo bot with the Python peer, as a user of `make run` would from the browser."""
    env = dict(run.env, PEER_USERNAME="alice", PEER_PASSWORD="alice-password")
    ca = str(run.certs / "ca.crt")
    call = ["call", "echo", "--media", "audio", "--seconds", "4"]
    return subprocess.run(
        [sys.executable, "-m", "backend.peer", "--url", run.url, "--ca-file", ca, *call],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CALL_S,
    )


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (turnserver) not installed")
def test_make_run_with_coturn_tells_what_runs_stays_quiet_and_stops_clean(
    make_run: Callable[..., MakeRun],
) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    run = make_run()
    run.wait_ready()

    config, secret = turn_secret(run.root)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700, "the secret's folder is private"
    turn_port = int(re.search(r"turn:127\.0\.0\.1:(\d+)", run.output).group(1))  # type: ignore[union-attr]

    call = echo_call(run)
    assert call.returncode == 0, f"echo call failed:\n{call.stdout}\n{call.stderr}\n{run.output}"

    assert run.ctrl_c() == 0, run.output
    out = run.output
    assert "Traceback" not in out, out
    assert "no TURN configured" not in out, out
    assert not HTTP_401.search(out), f"the bot's first sign-in shows a 401:\n{out}"
    assert not LIBRARY_LOGGER.search(out), f"library logs in make run's output:\n{out}"
    assert run.url in out and f"turn:127.0.0.1:{turn_port}" in out and "echo bot" in out, out
    assert refused(run.port) and refused(turn_port), "gunicorn or coturn outlived make run"

    after = {Path(tempfile.gettempdir()) / name for name in set(os.listdir(tempfile.gettempdir()))}
    new = sorted(p for p in after if p.name not in before and not p.is_symlink())
    left = holding(secret, [run.root, *new])
    assert not left, f"the TURN secret is still on disk in {left}"


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("janus") is None, reason="Janus (Debian's janus) not installed")
def test_make_run_with_janus_sends_group_calls_through_it_and_leaves_no_secret_behind(
    make_run: Callable[..., MakeRun],
) -> None:
    run = make_run(GROUP_CALLS="sfu")
    run.wait_ready()

    lines = [line for line in run.lines if line.startswith("janus:")]
    assert len(lines) == 1, run.output
    where = re.search(r"http://127\.0\.0\.1:(\d+)/janus", lines[0])
    assert where, lines[0]
    url, janus_port = where.group(0), int(where.group(1))
    folder, api_secret, admin_key = janus_config(run.instance)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700, "the secrets' folder is private"
    assert stat.S_IMODE((folder / "janus.jcfg").stat().st_mode) == 0o600
    assert api_secret not in run.output and admin_key not in run.output, run.output
    with urllib.request.urlopen(f"{url}/info", timeout=10) as answer:
        assert json.load(answer)["name"] == "Janus WebRTC Server"

    server = ParleyServer(port=run.port, certs=run.certs, database_url="", env={})
    aio.run(sfu_call(server, lambda: janus_rooms(url, api_secret, admin_key)))

    assert run.ctrl_c() == 0, run.output
    out = run.output
    assert "Traceback" not in out, out
    assert refused(run.port) and refused(janus_port), "gunicorn or Janus outlived make run"
    assert not folder.exists(), "Janus's folder outlived make run"
    for secret in (api_secret, admin_key):
        assert not holding(secret, [run.root]), "a Janus secret is still on disk"


@pytest.mark.timeout(600)
def test_make_run_without_coturn_or_janus_says_so_once(make_run: Callable[..., MakeRun]) -> None:
    run = make_run(path=str(BIN))  # the venv only: no turnserver, no janus on PATH
    run.wait_ready()
    assert run.ctrl_c() == 0, run.output
    out = run.output
    assert out.count("no TURN configured") == 1, out
    assert "coturn" in out and run.url in out, out
    janus = [line for line in run.lines if line.startswith("janus:")]
    assert len(janus) == 1 and "not installed" in janus[0], out
    assert "group calls stay a mesh of up to GROUP_CALL_MAX (4)" in janus[0], out
    assert "Traceback" not in out, out
