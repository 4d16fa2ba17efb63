"""Configuration from the environment, and the production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import create_app
from backend.config import ConfigError, from_env


def test_local_runs_generate_a_secret_key_once_and_keep_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = from_env(tmp_path)["SECRET_KEY"]
    assert len(first) >= 40
    assert from_env(tmp_path)["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_default_database_is_sqlite_under_instance(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert from_env(tmp_path)["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'parley.db'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/parley")
    assert from_env(tmp_path)["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/parley"


@pytest.mark.parametrize("secret", ["", "dev", "change-me"])
def test_production_refuses_to_start_without_a_real_secret_key(
    tmp_path: Path,
    monkeypatch,
    secret: str,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("PARLEY_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        from_env(tmp_path)


def test_production_refuses_turn_urls_without_a_turn_secret(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PARLEY_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-key-from-the-deployment")
    monkeypatch.setenv("TURN_URLS", "turn:turn.example:3478")
    monkeypatch.delenv("TURN_SECRET", raising=False)
    with pytest.raises(ConfigError, match="TURN_SECRET"):
        from_env(tmp_path)
    monkeypatch.setenv("TURN_SECRET", "shared-with-coturn")
    assert from_env(tmp_path)["TURN_URLS"] == ["turn:turn.example:3478"]


def test_create_app_refuses_production_without_secret(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PARLEY_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError):
        create_app()


def test_allowed_origins_are_a_comma_list(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example")
    assert from_env(tmp_path)["ALLOWED_ORIGINS"] == ["https://a.example", "https://b.example"]
