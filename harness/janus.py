"""Run a real Janus (Debian's package) for tests, in a network namespace the test creates.

Janus gathers ICE candidates on every interface but loopback (its ice.c skips IFF_LOOPBACK), so
on loopback alone it would offer browsers nothing to connect to. Each fixture therefore makes
its own namespace joined to this one by a veth pair on a private /30 (10.201.x.y): Janus runs
inside it, its HTTP API and its media on the inner address, and the browsers, the Python peers
and Parley's server reach it over the pair. Nothing goes anywhere but that namespace.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backend.sfu.janusconf import JanusConfig, janus_binary

_count = itertools.count()


@dataclass
class Namespace:
    """A network namespace joined to ours by a veth pair: `outer` here, `inner` in it."""

    name: str
    outer: str
    inner: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextmanager
def namespace() -> Iterator[Namespace]:
    """Make a namespace with a veth pair on a /30 of its own; delete both afterwards."""
    n = next(_count)
    taken = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, timeout=20).stdout
    slot = (os.getpid() * 8 + n) % (64 * 256)  # a /30 of 10.201.0.0/16 per (process, fixture)
    while f"10.201.{(slot * 4) // 256}.{(slot * 4) % 256 + 1}/30" in taken:
        slot = (slot + 1) % (64 * 256)  # another test's pair has this one
    third, fourth = divmod(slot * 4, 256)
    name, here, there = f"parley-j{os.getpid()}-{n}", f"pj{slot}a", f"pj{slot}b"
    outer, inner = f"10.201.{third}.{fourth + 1}", f"10.201.{third}.{fourth + 2}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=20)
    _ip("netns", "add", name)
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", name)
        _ip("addr", "add", f"{outer}/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", name, "addr", "add", f"{inner}/30", "dev", there)
        _ip("-n", name, "link", "set", there, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield Namespace(name, outer, inner)
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@dataclass
class JanusServer:
    """A running Janus: its API address and secrets, as Parley's settings name them."""

    config: JanusConfig
    ns: Namespace
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.config.url

    def env(self) -> dict[str, str]:
        """The settings that point a Parley server at this Janus."""
        return settings(self.config)

    def start(self) -> None:
        binary = janus_binary() or "janus"
        command = ["ip", "netns", "exec", self.ns.name, *self.config.command(binary)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/info", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"janus exited:\n{self.tail_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"janus did not answer in {timeout} s:\n{self.tail_log()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Stop Janus (every session, room and peer connection with it) and start it again."""
        self.stop(signal.SIGKILL)
        self.start()

    def tail_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def janus_config(workdir: Path, ns: Namespace, turn_rest_api: str = "") -> JanusConfig:
    """A Janus's settings with fresh secrets, its API on the namespace's inner address."""
    return JanusConfig(
        folder=workdir / "janus-config",
        http_ip=ns.inner,
        http_port=8088,
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        turn_rest_api=turn_rest_api,
    )


def settings(config: JanusConfig) -> dict[str, str]:
    """The settings that point a Parley server at the Janus of `config`."""
    return {
        "JANUS_URL": config.url,
        "JANUS_API_SECRET": config.api_secret,
        "JANUS_ADMIN_KEY": config.admin_key,
    }


@contextmanager
def janus_in(ns: Namespace, config: JanusConfig, workdir: Path) -> Iterator[JanusServer]:
    """Run a Janus with `config` in the namespace `ns` for the block."""
    workdir.mkdir(parents=True, exist_ok=True)
    config.write()
    server = JanusServer(config, ns, workdir / "janus.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def janus_server(workdir: Path) -> Iterator[JanusServer]:
    """Run a Janus in a namespace of its own for the block; its API on the namespace's address."""
    with namespace() as ns, janus_in(ns, janus_config(workdir, ns), workdir) as server:
        yield server
