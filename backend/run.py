"""`make run`: certificates, database, coturn, Janus, gunicorn and the echo bot, and an account of
them."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from .cli import local_addresses, make_certificates
from .config import PROJECT_ROOT
from .sfu.localjanus import JanusFailed, JanusMissing, LocalJanus
from .turnserver import LocalTurn, TurnServerMissing

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 120


class Stop(Exception):
    """Raised in the main thread by Ctrl-C, SIGTERM or SIGHUP: stop everything."""


def _urls(host: str, port: int, scheme: str = "https") -> list[str]:
    urls = [f"{scheme}://localhost:{port}"]
    if host in {"0.0.0.0", "::"}:
        urls += [
            f"{scheme}://[{a}]:{port}" if ":" in a else f"{scheme}://{a}:{port}"
            for a in local_addresses()
        ]
    elif host not in {"127.0.0.1", "localhost", "::1"}:
        urls = [f"{scheme}://{host}:{port}"]
    return urls


def _say(what: str, detail: str) -> None:
    print(f"{what + ':':<14}{detail}", flush=True)


def _ensure_certificates(certs: Path) -> None:
    if (certs / "server.crt").exists() and (certs / "server.key").exists():
        _say("certificates", f"{certs} (local CA: ca.crt)")
        return
    names = make_certificates(certs)
    _say("certificates", f"made in {certs} for {', '.join(names)} (local CA: ca.crt)")


def _migrate(env: dict[str, str]) -> None:
    """Bring the database schema up to date; show flask's output only when it fails."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "backend", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"database migration failed (exit status {result.returncode})")


def _database(env: dict[str, str], instance: Path) -> str:
    from sqlalchemy.engine import make_url

    url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'parley.db'}"
    return make_url(url).render_as_string(hide_password=True)


def _start_janus(janus: LocalJanus, env: dict[str, str]) -> None:
    """Start a Janus for group calls when it is installed and point gunicorn's env at it."""
    if env.get("JANUS_URL"):
        _say("Janus", env["JANUS_URL"])
        return
    mesh = f"group calls stay a mesh of up to GROUP_CALL_MAX ({env.get('GROUP_CALL_MAX') or 4})"
    try:
        janus.start()
    except JanusMissing:
        _say("janus", f"not installed: {mesh}; apt-get install janus for bigger ones")
        return
    except (JanusFailed, OSError) as exc:
        janus.stop()
        _say("janus", f"did not start ({exc}): {mesh}")
        return
    env.update(janus.env())
    _say(
        "janus",
        f"{janus.url} (VideoRoom; media on this host's addresses), secrets made for this run",
    )


def _answers(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        # Patient: a client that gives up mid-handshake while the worker boots costs a traceback.
        urllib.request.urlopen(f"{url}/api/me", context=context, timeout=60)
    except urllib.error.HTTPError:
        return True  # 401: the app is up
    except OSError:
        return False
    return True


def _popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own session: the terminal's Ctrl-C reaches only this supervisor, which stops the
    # children in order (a gevent worker hit by SIGINT directly dies with a traceback).
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def _end(child: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(sig)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def main() -> int:
    """Start the services, print where to open Parley, and stop everything on Ctrl-C."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8443"))
    instance = Path(os.environ.get("PARLEY_INSTANCE") or PROJECT_ROOT / "instance").resolve()
    certs = Path(os.environ.get("CERTS_DIR") or PROJECT_ROOT / "certs").resolve()
    scheme = "http" if os.environ.get("PARLEY_TLS") == "0" else "https"
    env = dict(os.environ, HOST=host, PORT=str(port), PARLEY_INSTANCE=str(instance))
    env["CERTS_DIR"] = str(certs)
    urls = _urls(host, port, scheme)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)

    turn: LocalTurn | None = None
    # Its secrets are fresh each run; they go to gunicorn alone and never reach a browser.
    janus = LocalJanus(instance, secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    workdir: Path | None = None
    gunicorn: subprocess.Popen[bytes] | None = None
    echo: subprocess.Popen[bytes] | None = None
    code = 0
    try:
        _ensure_certificates(certs)
        if not env.get("TURN_URLS"):
            instance.mkdir(parents=True, exist_ok=True)
            # Its config holds the secret: a private folder (0700) in the instance folder, never
            # a shared one like /tmp, removed when we stop.
            workdir = Path(tempfile.mkdtemp(prefix="coturn-", dir=instance))
            try:
                # TLS too, with the dev certificate: Check connection tests all three transports.
                tls = (certs / "server.crt", certs / "server.key")
                turn = LocalTurn(workdir, secret=secrets.token_urlsafe(32), tls=tls)
                turn.start()
                env["TURN_URLS"] = ",".join(turn.urls)
                env["TURN_SECRET"] = turn.secret
                _say(
                    "coturn",
                    f"turn:{turn.host}:{turn.port} (UDP, TCP), turns:localhost:{turn.tls_port} "
                    "(TLS), secret made for this run",
                )
            except TurnServerMissing:
                turn = None
                _say("coturn", "not installed, so calls use direct paths only (apt install coturn)")
        else:
            _say("TURN", env["TURN_URLS"])
        _start_janus(janus, env)
        _migrate(env)
        _say("database", f"{_database(env, instance)} (migrated)")

        _say("gunicorn", f"serving Parley on {host}:{port}")
        config = str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py")
        # No control socket: it would sit in the shared ~/.gunicorn, one for every `make run`.
        app = [config, "--no-control-socket", "backend:create_app()"]
        gunicorn = _popen([str(BIN / "gunicorn"), "-c", *app], env)
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(urls[0], context if scheme == "https" else None):
            if gunicorn.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start; see its log above")
            time.sleep(0.2)

        # The echo-test bot signs in like any browser would (its own asyncio process, aiortc).
        # Not Janus's secrets: the bot is a client like any browser.
        echo_env = {k: v for k, v in env.items() if not k.startswith("JANUS_")}
        echo_env["PARLEY_URL"] = env.get("PARLEY_URL") or urls[0]
        echo_env.setdefault("PARLEY_CA_FILE", str(certs / "ca.crt"))
        echo = _popen([sys.executable, "-m", "backend.peer", "echo"], echo_env)
        _say("echo bot", f"answers calls to {env.get('ECHO_USERNAME', 'echo')!r}")

        print("\nParley is running. Open:", flush=True)
        for url in urls:
            print(f"  {url}")
        if host in {"127.0.0.1", "localhost", "::1"}:
            print("Only this machine can reach it; `make run HOST=0.0.0.0` serves your network.")
        else:
            print(f"Phones: first install the local CA from {urls[-1]}/ca.crt (see README).")
        print("Ctrl-C stops everything.\n", flush=True)
        code = gunicorn.wait()
        print(f"gunicorn exited with status {code}; stopping", flush=True)
        code = code or 1
    except Stop:
        print("\nstopping...", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        _end(echo, signal.SIGINT, 15)  # first, so it does not log the server going away
        _end(gunicorn, signal.SIGTERM, 30)  # graceful: sockets close with 1001, rooms on Janus
        janus.stop()  # and its folder, the secrets with it
        if turn is not None:
            turn.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
