"""Start real Parley servers (gunicorn + gevent over HTTPS) on free loopback ports for tests."""

from __future__ import annotations

import itertools
import os
import random
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.cli import make_certificates

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _test_ports() -> range:
    """Where this process picks listening ports: below the kernel's ephemeral range, one slice
    per pytest-xdist worker.

    A port the kernel hands out for "any free port" comes from the ephemeral range, the same range
    every outgoing connection takes its local port from; between picking it and the server binding
    it (seconds: migrations run first), a browser's or a client's connection can take it. CI saw
    gunicorn exit with "Connection in use" that way. Below that range, and apart per worker, only
    our own servers bind.
    """
    ephemeral_low = 32768
    try:
        low_high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        ephemeral_low = int(low_high[0])
    except (OSError, ValueError, IndexError):
        pass
    base = 10000
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    span = (ephemeral_low - base) // max(workers, index + 1)
    start = base + index * span
    return range(start, start + span)


_issued: set[int] = set()  # handed out by this process: never twice, even before they are bound


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now and that no outgoing connection will
    take before our server binds it (see _test_ports)."""
    ports = _test_ports()
    offset = random.randrange(len(ports))
    for step in range(len(ports)):
        port = ports[(offset + step) % len(ports)]
        if port in _issued:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued.add(port)
        return port
    raise RuntimeError(f"no free port in {ports}")


def make_test_certs(directory: Path) -> Path:
    """Create a local CA and server certificate in directory (once) and return it."""
    if not (directory / "server.crt").exists():
        make_certificates(directory)
    return directory


@dataclass
class ParleyServer:
    """A running gunicorn serving Parley; `url` is its origin (https unless PARLEY_TLS=0)."""

    port: int
    certs: Path
    database_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def scheme(self) -> str:
        """Return http with PARLEY_TLS=0 (plain HTTP behind a TLS-terminating proxy), else https."""
        return "http" if self.env.get("PARLEY_TLS") == "0" else "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{self.scheme.replace('http', 'ws')}://localhost:{self.port}/ws"

    def ssl_context(self) -> ssl.SSLContext:
        """Return a client context that trusts the test CA."""
        return ssl.create_default_context(cafile=str(self.certs / "ca.crt"))

    def start(self) -> None:
        """Start gunicorn and wait until it answers over HTTPS."""
        assert self.log is not None
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.process = self._spawn(out)
        self.wait_ready()

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                *self.extra_args,
                "backend:create_app()",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Poll /api/me until the server answers (401 is an answer)."""
        deadline = time.monotonic() + timeout
        context = self.ssl_context()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.tail_log()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/me", context=context, timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer in {timeout}s: {self.tail_log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop gunicorn (and its workers) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port and database."""
        self.stop()
        self.start()

    def tail_log(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def parley_env(database_url: str, certs: Path, port: int, **overrides: str) -> dict[str, str]:
    """Return the environment a test server runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURN_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "CERTS_DIR": str(certs),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "AUTH_RATE_LIMIT": "10000 per minute",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def migrate(env: dict[str, str]) -> None:
    """Create the schema with the real migrations."""
    subprocess.run(
        [str(BIN / "flask"), "--app", "backend", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


@contextmanager
def parley_server(
    workdir: Path,
    certs: Path,
    database_url: str | None = None,
    also_on: tuple[str, ...] = (),
    **overrides: str,
) -> Iterator[ParleyServer]:
    """Run one Parley server on a free port for the duration of the block: on 127.0.0.1, and on
    the same port at each address of `also_on` (a test's own namespace's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database_url = database_url or f"sqlite:///{workdir / 'parley.db'}"
    if also_on:
        overrides["BIND"] = ",".join(f"{ip}:{port}" for ip in ("127.0.0.1", *also_on))
    env = parley_env(database_url, certs, port, **overrides)
    migrate(env)
    server = ParleyServer(port=port, certs=certs, database_url=database_url, env=env)
    server.log = workdir / f"gunicorn-{port}.log"
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RedisServer:
    """A redis-server on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _spawn_redis(workdir: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Run a throwaway redis-server (no persistence) on 127.0.0.1 for the block."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (workdir / "redis.log").open("ab") as log:  # the child keeps its own descriptor
        process = _spawn_redis(workdir, port, log)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    try:
        yield RedisServer(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _postgres_bin() -> Path:
    """Return the folder of the newest installed PostgreSQL's programs (PG_BIN overrides)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[0]


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port; superuser `postgres`, trust auth."""

    port: int
    datadir: Path
    _databases: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        ) as conn:
            conn.execute(sql)

    @contextmanager
    def database(self) -> Iterator[str]:
        """Create an empty database for the block and return its SQLAlchemy URL; drop it after."""
        name = f"parley_{os.getpid()}_{next(self._databases)}"
        self.execute(f"CREATE DATABASE {name}")
        try:
            yield self.url(name)
        finally:
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _as_postgres(command: str) -> list[str]:
    """initdb refuses to run as root: run as the `postgres` user then, directly otherwise."""
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", command]
    return ["sh", "-c", command]


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Run a throwaway PostgreSQL (initdb into a temporary folder) on 127.0.0.1 for the block.

    Durability is switched off (fsync, synchronous_commit): the data dies with the block, and
    tests should not wait on the disk.
    """
    pg_bin = _postgres_bin()
    # Under /tmp itself, not pytest's root-only temp folder, so the postgres user can reach it.
    datadir = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    port = free_port()
    options = (
        f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    data, log = shlex.quote(str(datadir / "data")), shlex.quote(str(datadir / "server.log"))
    pg_ctl = shlex.quote(str(pg_bin / "pg_ctl"))
    try:
        subprocess.run(
            _as_postgres(
                f"{shlex.quote(str(pg_bin / 'initdb'))} -D {data} --auth=trust -U postgres "
                "--no-sync -E UTF8 --locale=C.UTF-8"
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(f"{pg_ctl} -D {data} -l {log} -o {shlex.quote(options)} -w start"),
            check=True,
            capture_output=True,
        )
        try:
            yield PostgresServer(port, datadir)
        finally:
            subprocess.run(
                _as_postgres(f"{pg_ctl} -D {data} -m immediate -w stop"), capture_output=True
            )
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


NGINX_SITE = ROOT / "deploy" / "nginx.conf"


def nginx_site(upstream_port: int, https_port: int, http_port: int, certs: Path) -> str:
    """Return deploy/nginx.conf with its deployment values set for loopback, the rest as shipped.

    These are exactly the values its header and docs/deploy.md tell an operator to change.
    """
    values = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": f"listen [::1]:{https_port} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": f"listen [::1]:{http_port};",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/letsencrypt/live/parley.example.com/fullchain.pem": str(certs / "server.crt"),
        "/etc/letsencrypt/live/parley.example.com/privkey.pem": str(certs / "server.key"),
        "server_name parley.example.com;": "server_name localhost;",
    }
    text = NGINX_SITE.read_text()
    for shipped, local in values.items():
        if shipped not in text:
            raise ValueError(f"deploy/nginx.conf no longer says {shipped!r}: update nginx_site()")
        text = text.replace(shipped, local)
    return text


def _nginx_main(prefix: Path, site: Path) -> str:
    """Return a minimal top-level nginx.conf: every path under prefix, the site included."""
    # Workers run as root here: pytest's temp folders are closed to the usual `nobody`/www-data.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp}    include {site};\n}}\n"
    )


@dataclass
class NginxServer:
    """Debian's nginx running deploy/nginx.conf in front of a Parley; `url` is its https origin."""

    port: int
    http_port: int
    certs: Path
    prefix: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """Return a client context that trusts the test CA."""
        return ssl.create_default_context(cafile=str(self.certs / "ca.crt"))

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextmanager
def nginx_server(workdir: Path, upstream: ParleyServer) -> Iterator[NginxServer]:
    """Run nginx (not as a daemon) with the shipped site in front of upstream for the block."""
    prefix = workdir / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    https_port, http_port = free_port(), free_port()
    site = prefix / "parley.conf"
    site.write_text(nginx_site(upstream.port, https_port, http_port, upstream.certs))
    main = prefix / "nginx.conf"
    main.write_text(_nginx_main(prefix, site))
    command = ["nginx", "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log"),
               "-g", "daemon off;"]  # fmt: skip
    with (prefix / "nginx.out").open("ab") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = NginxServer(https_port, http_port, upstream.certs, prefix, process)
    try:
        _wait_proxied(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_proxied(server: NginxServer, timeout: float = 20) -> None:
    """Poll /api/me through nginx until Parley's answer comes back (401 is an answer)."""
    deadline = time.monotonic() + timeout
    context = server.ssl_context()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"nginx exited: {server.error_log()}")
        try:
            urllib.request.urlopen(f"{server.url}/api/me", context=context, timeout=2)
            return
        except urllib.error.HTTPError as answer:
            if answer.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nginx did not proxy to Parley in {timeout}s: {server.error_log()}")
