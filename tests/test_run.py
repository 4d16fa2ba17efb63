"""`make run` (`python -m backend.run`): a short, true account, quiet libraries, a clean Ctrl-C, no
secret left behind."""

from __future__ import annotations

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

import pytest

from harness.servers import BIN, ROOT, free_port

# A slow, shared 2-core machine: generous deadlines, checked by polling.
START_S = 120
CALL_S = 90
STOP_S = 60
# "401" as an HTTP status, not inside a pid ("[401]"), a port, a timestamp (",401") or a number.
HTTP_401 = re.compile(r"(?<![\[\d,:.])401(?![\]\d])")
LIBRARY_LOGGER = re.compile(r"\b(aioice|aiortc|httpx|httpcore|websockets)(\.\w+)*\b.*")


class MakeRun:
    """`python -m backend.run` in its own process group, as a terminal runs it; output collected."""

    def __init__(self, root: Path, path: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.instance = root / "instance"
        self.certs = root / "certs"
        self.tmp = root / "tmp"  # the run's TMPDIR: a scan of it for the secret is precise
        self.tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TURN_", "REDIS_"))}
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
        """Kill the run if a failed test left it going, and release its pipe."""
        self.kill()
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[..., MakeRun]]:
    runs: list[MakeRun] = []

    def start(path: str | None = None) -> MakeRun:
        runs.append(MakeRun(tmp_path, path))
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
def test_make_run_without_coturn_says_so_once(make_run: Callable[..., MakeRun]) -> None:
    run = make_run(path=str(BIN))  # the venv only: no turnserver on PATH
    run.wait_ready()
    assert run.ctrl_c() == 0, run.output
    out = run.output
    assert out.count("no TURN configured") == 1, out
    assert "coturn" in out and run.url in out, out
    assert "Traceback" not in out, out
