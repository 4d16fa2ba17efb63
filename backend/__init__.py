"""Parley: chat with WebRTC voice and video calls. `create_app()` builds the Flask app."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, errors, security
from .extensions import db, limiter, login_manager, migrate, sock
from .signaling.socket import server_options

log = logging.getLogger("parley")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Parley app from the environment, overridden by test_config."""
    # PARLEY_INSTANCE moves the instance folder (keys, SQLite): `make run`'s test uses a temp one.
    instance = os.environ.get("PARLEY_INSTANCE")
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()) if instance else None,
        instance_relative_config=True,
        static_folder=None,
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.from_env(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
    app.config["SOCK_SERVER_OPTIONS"] = server_options(app.config["WS_MAX_MESSAGE"])
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        # A server database restarts or fails over and drops every pooled connection: test each
        # one as it is taken (one round trip) instead of failing the request that finds it dead.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if app.config["PROXY_HOPS"]:
        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(Path(__file__).resolve().parent / "migrations"), render_as_batch=True
    )
    login_manager.init_app(app)
    limiter.init_app(app)
    sock.init_app(app)
    errors.init_app(app)
    security.init_app(app)

    from . import auth, cli, groups, push, rooms, turn, web
    from .signaling import views as signaling

    for module in (auth, rooms, groups, turn, push, web):
        app.register_blueprint(module.bp)
    signaling.init_app(app)
    cli.init_app(app)
    return app
