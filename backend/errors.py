"""One JSON error response for the whole API."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException


def error_response(status: int, message: str) -> tuple[Response, int]:
    """Return a JSON `{"error": message}` body with the given status."""
    return jsonify(error=message), status


def init_app(app: Flask) -> None:
    """Turn every HTTP error under /api (and /ws) into a JSON error."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if request.path.startswith(("/api/", "/ws")):
            message = exc.description or exc.name
            if exc.code == 429:
                message = f"too many requests: {exc.description}"
            return error_response(exc.code or 500, message)
        return exc
