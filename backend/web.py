"""Serve the PWA's static files and the local CA certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, send_from_directory

bp = Blueprint("web", __name__)

# Served with no-cache so a new deploy is seen at once; the service worker does the caching.
_NO_CACHE = {"index.html", "sw.js", "manifest.webmanifest"}


def _pwa_dir() -> Path:
    return Path(current_app.config["PWA_DIR"])


@bp.get("/")
def index() -> Any:
    return _send("index.html")


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
    if filename == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/"
    return response
