"""`make run`: serve Parley over HTTPS with gunicorn, beside a loopback coturn when installed."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .cli import local_addresses
from .config import PROJECT_ROOT
from .turnserver import LocalTurn, TurnServerMissing


def _urls(host: str, port: int) -> list[str]:
    urls = [f"https://localhost:{port}"]
    if host in {"0.0.0.0", "::"}:
        urls += [
            f"https://[{a}]:{port}" if ":" in a else f"https://{a}:{port}"
            for a in local_addresses()
        ]
    elif host not in {"127.0.0.1", "localhost", "::1"}:
        urls = [f"https://{host}:{port}"]
    return urls


def main() -> int:
    """Start the services, print where to open Parley, and stop everything on Ctrl-C."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8443"))
    env = dict(os.environ, HOST=host, PORT=str(port))
    workdir = Path(tempfile.mkdtemp(prefix="parley-run-"))
    children: list[subprocess.Popen[bytes]] = []
    turn = None

    if not env.get("TURN_URLS"):
        try:
            turn = LocalTurn(workdir / "coturn", secret=secrets.token_urlsafe(32))
            turn.start()
            env["TURN_URLS"] = ",".join(turn.urls)
            env["TURN_SECRET"] = turn.secret
            print(f"coturn: relaying on {', '.join(turn.urls)}")
        except TurnServerMissing as exc:
            turn = None
            print(f"coturn: not started ({exc}); calls use direct paths only")

    gunicorn = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
        "backend:create_app()",
    ]
    children.append(subprocess.Popen(gunicorn, cwd=PROJECT_ROOT, env=env))
    # The echo-test bot signs in like any browser would (its own asyncio process, aiortc).
    echo_env = dict(env, PARLEY_URL=env.get("PARLEY_URL", f"https://localhost:{port}"))
    echo = [sys.executable, "-m", "backend.peer", "echo"]
    children.append(subprocess.Popen(echo, cwd=PROJECT_ROOT, env=echo_env))

    print("\nParley is starting. Open:")
    for url in _urls(host, port):
        print(f"  {url}")
    print(f"Phones: install the local CA from {_urls(host, port)[-1]}/ca.crt (see README).")
    if host in {"127.0.0.1", "localhost"}:
        print("Only this machine can reach it; `make run HOST=0.0.0.0` serves the whole network.")

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        code = children[0].wait()
    except KeyboardInterrupt:
        stop()
        code = children[0].wait()
    finally:
        stop()
        for child in children:
            child.wait(timeout=10)
        if turn is not None:
            turn.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
