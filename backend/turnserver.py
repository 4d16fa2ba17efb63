"""Run a coturn on loopback with TURN REST API credentials: for `make run` and the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class TurnServerMissing(RuntimeError):
    """coturn's `turnserver` is not installed."""


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalTurn:
    """One coturn process listening on 127.0.0.1, relaying on 127.0.0.1 (loopback peers allowed)."""

    def __init__(
        self,
        workdir: Path,
        secret: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        relay_ports: tuple[int, int] | None = None,
        extra_lines: tuple[str, ...] = (),
        allow_loopback: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.workdir = workdir
        self.secret = secret
        self.host = host
        self.port = port or _free_port(socket.SOCK_STREAM)
        if relay_ports is None:
            start = 20000 + (self.port % 200) * 200
            relay_ports = (start, start + 199)
        self.relay_ports = relay_ports
        self.extra_lines = extra_lines
        self.allow_loopback = allow_loopback
        # (certificate, key) for a turns: listener, as deploy/turnserver.conf offers on 443.
        self.tls = tls
        self.tls_port = _free_port(socket.SOCK_STREAM) if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> list[str]:
        """Return the TURN URIs of this server: UDP, TCP, and TLS when it has a certificate."""
        urls = [
            f"turn:{self.host}:{self.port}?transport=udp",
            f"turn:{self.host}:{self.port}?transport=tcp",
        ]
        if self.tls_port is not None:
            # By name: the certificate is for localhost, and browsers check it.
            urls.append(f"turns:localhost:{self.tls_port}?transport=tcp")
        return urls

    @property
    def config_path(self) -> Path:
        """Return where the configuration is written while coturn runs."""
        return self.workdir / "turnserver.conf"

    def config_text(self) -> str:
        """Return the coturn configuration this server runs with."""
        lines = [
            f"listening-ip={self.host}",
            f"relay-ip={self.host}",
            f"listening-port={self.port}",
            f"min-port={self.relay_ports[0]}",
            f"max-port={self.relay_ports[1]}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            "realm=parley.local",
            "no-cli",
            *self._tls_lines(),
            "no-dtls",
            "fingerprint",
            f"pidfile={self.workdir / 'turnserver.pid'}",
            f"log-file={self.workdir / 'turnserver.log'}",
            "simple-log",
            *self.extra_lines,
        ]
        if self.allow_loopback:
            lines.append("allow-loopback-peers")  # loopback peers only: never in production
        return "\n".join(lines) + "\n"

    def _tls_lines(self) -> list[str]:
        if self.tls is None:
            return ["no-tls"]
        cert, key = self.tls
        return [f"tls-listening-port={self.tls_port}", f"cert={cert}", f"pkey={key}"]

    def start(self, timeout: float = 10) -> None:
        """Start coturn and wait until it accepts TCP connections."""
        binary = shutil.which("turnserver")
        if binary is None:
            raise TurnServerMissing("`turnserver` not found; install Debian's coturn package")
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.config_path
        config.unlink(missing_ok=True)
        # It holds the secret: readable by us alone from the first byte, not chmod-ed afterwards.
        with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(self.config_text())
        self.process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log_tail()}")
            try:
                for port in (self.port, self.tls_port or self.port):
                    socket.create_connection((self.host, port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"turnserver did not listen in {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        """Stop coturn, wait for it, and delete its configuration (the secret)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.config_path.unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        log = self.workdir / "turnserver.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
