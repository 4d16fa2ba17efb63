"""Run a Janus for `make run`: its HTTP API on loopback, its media on this host's interfaces.

The API listens on 127.0.0.1 only, with an API secret and an admin key made for this run, so
Parley's server is its only client. Janus gathers ICE candidates on every interface but loopback
(whatever `-i` says: that address only fills the SDP's c= and o= lines, which ICE ignores), which
is what a browser on this machine or a phone on the LAN needs. The configuration holds both
secrets, so it lives in a private folder of its own (0700) that `stop` deletes, Janus's log with it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from .janusconf import JanusConfig, janus_lib_folder

LOOPBACK = "127.0.0.1"


class JanusMissing(RuntimeError):
    """Debian's `janus` (the executable on PATH, or its plugins) is not installed."""


class JanusFailed(RuntimeError):
    """Janus exited, or its API did not answer in time; the message is one line."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class LocalJanus:
    """One Janus process: VideoRoom behind the HTTP API on loopback, with secrets made here."""

    def __init__(self, parent: Path, api_secret: str, admin_key: str) -> None:
        self.parent = parent
        self.api_secret = api_secret
        self.admin_key = admin_key
        self.folder: Path | None = None
        self.config: JanusConfig | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The API's address (JANUS_URL); known once `start` has written the configuration."""
        if self.config is None:
            raise RuntimeError("janus has not been started")
        return self.config.url

    def env(self) -> dict[str, str]:
        """The settings that point Parley's server at this Janus."""
        return {
            "JANUS_URL": self.url,
            "JANUS_API_SECRET": self.api_secret,
            "JANUS_ADMIN_KEY": self.admin_key,
        }

    def start(self, timeout: float = 30) -> None:
        """Write the configuration, start Janus and wait until GET <url>/info answers."""
        # PATH decides, as for coturn's turnserver: a PATH without it runs Parley without it.
        binary = shutil.which("janus")
        if binary is None or janus_lib_folder() is None:
            raise JanusMissing("`janus` not found; install Debian's janus package")
        self.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="janus-", dir=self.parent))
        self.config = JanusConfig(
            folder=self.folder,
            http_ip=LOOPBACK,
            http_port=_free_port(),
            api_secret=self.api_secret,
            admin_key=self.admin_key,
        )
        self.config.write()
        with (self.folder / "janus.log").open("ab") as log:
            # Its own session: Ctrl-C reaches make run, which stops Janus after gunicorn, so the
            # server can still close its rooms on the way out.
            self.process = subprocess.Popen(
                self.config.command(binary),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                why = f"exited with status {self.process.returncode}: {self.last_log_line()}"
                self.stop()
                raise JanusFailed(why)
            if time.monotonic() > deadline:
                self.stop()
                raise JanusFailed(f"its API did not answer in {timeout:.0f} s")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/info", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop Janus, wait for it, and delete its folder (the secrets and the log)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def last_log_line(self) -> str:
        """Janus's last words, for a one-line account of why it did not start."""
        if self.folder is None:
            return "no log"
        try:
            lines = (self.folder / "janus.log").read_text(errors="replace").split("\n")
        except OSError:
            return "no log"
        said = [line.strip() for line in lines if line.strip()]
        return said[-1] if said else "no log"
