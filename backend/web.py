"""Serve the PWA: its files, its service worker stamped with the shell's version, the local CA."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, request, send_from_directory
from flask.blueprints import BlueprintSetupState

bp = Blueprint("web", __name__)

SERVICE_WORKER = "sw.js"
# Served with no-cache so a new deploy is seen at once; the service worker does the caching.
_NO_CACHE = {"index.html", SERVICE_WORKER, "manifest.webmanifest"}
# The one line of sw.js the server fills in (any value there is a placeholder).
_BUILD_LINE = re.compile(r"^const BUILD = .*;$", re.MULTILINE)


@dataclass(frozen=True)
class Shell:
    """The app shell: a version that changes with any file of the PWA, and the URLs to cache."""

    version: str
    urls: list[str]
    service_worker: str  # sw.js with the version and the URLs filled in


def build_shell(pwa_dir: Path) -> Shell | None:
    """Hash every file of the PWA into a version and fill it into sw.js (None without a sw.js)."""
    worker = pwa_dir / SERVICE_WORKER
    if not worker.is_file():
        return None
    digest = hashlib.sha256()
    urls = ["/"]
    for path in sorted(pwa_dir.rglob("*")):
        relative = path.relative_to(pwa_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        data = path.read_bytes()
        # Name and length before the bytes, so moving bytes between files changes the hash too.
        digest.update(f"{relative.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
        if relative.as_posix() != SERVICE_WORKER:
            urls.append(f"/{relative.as_posix()}")
    version = digest.hexdigest()[:16]
    build = json.dumps({"version": version, "shell": urls})
    template = worker.read_text(encoding="utf-8")
    filled, count = _BUILD_LINE.subn(lambda _: f"const BUILD = {build};", template, count=1)
    if count != 1:
        raise RuntimeError(f"{worker} has no `const BUILD = …;` line for the server to fill")
    return Shell(version, urls, filled)


@bp.record_once
def _hash_the_shell(state: BlueprintSetupState) -> None:
    # Once per app (so per start-up of a worker): a deploy restarts the server and so re-hashes.
    state.app.extensions["parley.shell"] = build_shell(Path(state.app.config["PWA_DIR"]))


def _pwa_dir() -> Path:
    return Path(current_app.config["PWA_DIR"])


@bp.get("/")
def index() -> Any:
    return _send("index.html")


@bp.get(f"/{SERVICE_WORKER}")
def service_worker() -> Any:
    """Serve sw.js with this start-up's shell version in it, so browsers install the new app."""
    shell: Shell | None = current_app.extensions["parley.shell"]
    if shell is None:
        abort(404)
    response = Response(shell.service_worker, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    response.set_etag(shell.version)
    return response.make_conditional(request)


@bp.get("/ca.crt")
def ca_certificate() -> Any:
    """Offer the local CA so a phone can trust the dev server."""
    certs = Path(current_app.config["CERTS_DIR"])
    if not (certs / "ca.crt").exists():
        abort(404)
    return send_from_directory(
        certs,
        "ca.crt",
        mimetype="application/x-x509-ca-cert",
        as_attachment=True,
        download_name="parley-local-ca.crt",
    )


@bp.get("/<path:filename>")
def static_file(filename: str) -> Any:
    if filename.startswith(("api/", "ws")):
        abort(404)
    return _send(filename)


def _send(filename: str) -> Any:
    response = send_from_directory(_pwa_dir(), filename, max_age=0)
    if filename in _NO_CACHE:
        response.headers["Cache-Control"] = "no-cache"
    return response
