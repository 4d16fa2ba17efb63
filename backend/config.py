"""Configuration read from environment variables, with defaults and production checks."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """Raise when the configuration cannot run Parley safely."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _local_secret_key(instance_path: Path, name: str = "secret_key") -> str:
    """Return the secret kept in instance/<name>, creating it once."""
    key_file = instance_path / name
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or allowed[0]
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def from_env(instance_path: Path) -> dict[str, Any]:
    """Build the Flask config mapping from the environment."""
    env = os.environ.get("PARLEY_ENV", "development")
    production = env == "production"
    secret = os.environ.get("SECRET_KEY", "")
    if production and (not secret or secret in {"dev", "change-me", "secret"}):
        raise ConfigError("PARLEY_ENV=production needs a SECRET_KEY of your own")
    turn_urls = _list("TURN_URLS")
    turn_secret = os.environ.get("TURN_SECRET", "")
    if production and turn_urls and not turn_secret:
        raise ConfigError("TURN_URLS is set but TURN_SECRET is not")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'parley.db'}"
    redis_url = os.environ.get("REDIS_URL", "")
    return {
        "PARLEY_ENV": env,
        "SECRET_KEY": secret or _local_secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "ALLOWED_ORIGINS": _list("ALLOWED_ORIGINS"),
        "PROXY_HOPS": _int("PROXY_HOPS", 0),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_NAME": "parley_session",
        "REDIS_URL": redis_url,
        # Keys and channels of this deployment in Redis, and how often a worker says it is alive
        # (it counts as dead after three missed beats).
        "REDIS_PREFIX": os.environ.get("REDIS_PREFIX", "parley"),
        "CLUSTER_HEARTBEAT": float(os.environ.get("CLUSTER_HEARTBEAT") or 2),
        # The echo-test bot's account: the name is reserved for whoever knows the password.
        "ECHO_USERNAME": os.environ.get("ECHO_USERNAME", "echo").strip().lower(),
        "ECHO_PASSWORD": os.environ.get("ECHO_PASSWORD")
        or _local_secret_key(instance_path, "echo_password"),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "AUTH_RATE_LIMIT": os.environ.get("AUTH_RATE_LIMIT", "10 per minute"),
        # Failed sign-ins only (a right password never counts): per account, and a larger budget
        # per address for everyone behind one NAT. A browser that signed in to the account before
        # is counted on its own instead (auth.py, device cookie).
        "LOGIN_ACCOUNT_LIMIT": os.environ.get("LOGIN_ACCOUNT_LIMIT", "5 per 5 minutes"),
        "LOGIN_ADDRESS_LIMIT": os.environ.get("LOGIN_ADDRESS_LIMIT", "100 per 5 minutes"),
        # Largest request body: a 4,000-character message with every character JSON-escaped as a
        # surrogate pair (12 bytes) fits; bigger bodies are refused with 413 before being read.
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 64 * 1024),
        "CALL_RING_TIMEOUT": _int("CALL_RING_TIMEOUT", 30),
        "CALL_GRACE_PERIOD": _int("CALL_GRACE_PERIOD", 15),
        # People in one group room, its creator included.
        "GROUP_MAX_MEMBERS": _int("GROUP_MAX_MEMBERS", 16),
        # People in one group call: a full mesh costs each of them an upload per other one.
        "GROUP_CALL_MAX": _int("GROUP_CALL_MAX", 4),
        # Group calls through Janus (backend/sfu): its API on a private address, with a secret
        # that never leaves the server. GROUP_CALLS=auto: groups bigger than GROUP_CALL_MAX.
        "JANUS_URL": os.environ.get("JANUS_URL", ""),
        "JANUS_API_SECRET": os.environ.get("JANUS_API_SECRET", ""),
        "JANUS_ADMIN_KEY": os.environ.get("JANUS_ADMIN_KEY", ""),
        "JANUS_TIMEOUT": float(os.environ.get("JANUS_TIMEOUT") or 10),
        "GROUP_CALLS": _choice("GROUP_CALLS", ("auto", "mesh", "sfu")),
        "SFU_CALL_MAX": _int("SFU_CALL_MAX", 16),
        "WS_MAX_MESSAGE": _int("WS_MAX_MESSAGE", 64 * 1024),
        "WS_PING_INTERVAL": _int("WS_PING_INTERVAL", 25),
        "WS_MESSAGE_RATE": _int("WS_MESSAGE_RATE", 20),
        "WS_MESSAGE_BURST": _int("WS_MESSAGE_BURST", 60),
        "TURN_URLS": turn_urls,
        "TURN_SECRET": turn_secret,
        "TURN_TTL": _int("TURN_TTL", 6 * 3600),
        "TURN_RATE_LIMIT": os.environ.get("TURN_RATE_LIMIT", "30 per minute"),
        "STUN_URLS": _list("STUN_URLS"),
        "ICE_TRANSPORT_POLICY": os.environ.get("ICE_TRANSPORT_POLICY", "all"),
        "PWA_DIR": os.environ.get("PWA_DIR", str(PROJECT_ROOT / "pwa")),
        "CERTS_DIR": os.environ.get("CERTS_DIR", str(PROJECT_ROOT / "certs")),
    }
