"""One JSON error response for the whole API."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from .extensions import limiter


def error_response(status: int, message: str) -> tuple[Response, int]:
    """Return a JSON `{"error": message}` body with the given status."""
    return jsonify(error=message), status


def _retry_after_seconds() -> int:
    """Return when the limit flask-limiter just applied lets this client in again."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    # Truncated like the Retry-After header flask-limiter adds, so both say the same number.
    return max(1, int(limit.reset_at - time.time()))


API_NOT_FOUND = "api_not_found"


def _api_not_found(rest: str) -> Any:
    raise NotFound("no such API route (docs/api.md lists them)")


def _holds_nul(value: Any) -> bool:
    """Tell whether any string in a parsed JSON value contains a NUL character."""
    pending = [value]
    while pending:  # a loop, not recursion: the body may nest as deep as the parser allowed
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def init_app(app: Flask) -> None:
    """Turn every HTTP error under /api (and /ws) into a JSON error."""
    # Without this, /api/rooms/abc/messages falls to the PWA's GET-only file route and a POST
    # there answers 405 (as if the route existed); every URL under /api/ the API lacks is 404.
    app.add_url_rule(
        "/api/<path:rest>",
        API_NOT_FOUND,
        _api_not_found,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    )

    @app.before_request
    def _refuse_unstorable_json() -> Any:
        # PostgreSQL's text cannot hold NUL: refuse it as bad input here, for every route,
        # instead of as a database error in whichever query meets it first.
        if not (request.path.startswith("/api/") and request.is_json):
            return None
        try:
            body = request.get_json(silent=True)  # parsed once here; views get the cached value
        except RecursionError:
            return error_response(400, "the JSON body is nested too deeply")
        if _holds_nul(body):
            return error_response(400, "strings must not contain NUL (\\u0000)")
        return None

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Any:
        limit = int(current_app.config["MAX_CONTENT_LENGTH"])
        return error_response(413, f"request body too large (at most {limit // 1024} KiB)")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith(("/api/", "/ws")):
            if exc.code == 429:
                return error_response(
                    429, f"Too many attempts. Try again in {_retry_after_seconds()} s."
                )
            return error_response(exc.code or 500, exc.description or exc.name)
        return exc
