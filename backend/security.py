"""Origin checks (CSRF and cross-site WebSocket hijacking) and security headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, request

from .errors import error_response

View = TypeVar("View", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), display-capture=(self), screen-wake-lock=(self), "
    "geolocation=(), payment=(), usb=()"
)


def origin_of(url: str) -> str | None:
    """Return scheme://host[:port] of a URL, or None when it has none."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(req: Request) -> set[str]:
    """Return the configured origins, or the app's own origin when none are configured."""
    configured = current_app.config.get("ALLOWED_ORIGINS") or []
    if configured:
        return {o.rstrip("/").lower() for o in configured}
    return {req.host_url.rstrip("/").lower()}


def request_origin(req: Request) -> str | None:
    """Return the Origin header, or the origin of the Referer when Origin is absent."""
    origin = req.headers.get("Origin")
    if origin and origin != "null":
        return origin.rstrip("/").lower()
    referer = req.headers.get("Referer")
    return origin_of(referer) if referer else None


def origin_allowed(req: Request) -> bool:
    """Tell whether the request comes from an allowed origin."""
    origin = request_origin(req)
    return origin is not None and origin in allowed_origins(req)


def csrf_exempt(view: View) -> View:
    """Let a view take state-changing requests without an Origin: only for views that read no
    cookie and check a credential of their own (Janus's TURN request carries a key)."""
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def init_app(app: Flask) -> None:
    """Refuse cross-origin state changes and add security headers to every response."""

    @app.before_request
    def _csrf_guard() -> Any:
        if request.method in SAFE_METHODS:
            return None
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "csrf_exempt", False):
            return None
        if not origin_allowed(request):
            return error_response(403, "cross-origin request refused (Origin not allowed)")
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        return response
