"""The deployment files in deploy/ and docs/deploy.md agree with systemd and with Parley's code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.servers import ROOT

DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deploy.md"
# Where the units expect the code; the repository stands in for it (its .venv is real).
INSTALL_DIR = "/opt/parley"
DEBIAN_COTURN = Path("/lib/systemd/system/coturn.service")
# Names in the guide that are not Parley's settings.
NOT_SETTINGS = {"CAP_NET_BIND_SERVICE"}

# os.environ.get("X"), os.environ["X"], and config.py's _int/_list/_bool("X").
READ_BY_CODE = re.compile(
    r"""(?:environ\.get|environ\[|getenv|_int|_list|_bool)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# NAME= lines (commented or not, or systemd Environment=), `NAME` in prose, and SNAKE_CASE words.
ASSIGNED = re.compile(r"^\s*#?\s*(?:Environment=)?([A-Z][A-Z0-9_]+)=", re.MULTILINE)
QUOTED = re.compile(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`")
SNAKE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")

requires_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def settings_read_by_parley() -> set[str]:
    """Return every environment variable the backend, the bot and the gunicorn config read."""
    sources = [*sorted((ROOT / "backend").rglob("*.py")), DEPLOY / "gunicorn.conf.py"]
    return {name for path in sources for name in READ_BY_CODE.findall(path.read_text())}


def settings_named_in_deploy_files() -> dict[str, set[str]]:
    """Return, per file, the variables the env example, the units, nginx and the guide name."""
    named: dict[str, set[str]] = {}
    for path in [*DEPLOY.glob("*.service"), DEPLOY / "parley.env.example", DEPLOY / "nginx.conf"]:
        text = path.read_text()
        named[path.name] = set(ASSIGNED.findall(text)) | set(SNAKE.findall(text))
    guide = GUIDE.read_text()
    named[GUIDE.name] = (set(QUOTED.findall(guide)) | set(ASSIGNED.findall(guide))) - NOT_SETTINGS
    return named


def test_every_setting_the_deploy_files_name_is_one_parley_reads() -> None:
    read = settings_read_by_parley()
    assert {"SECRET_KEY", "PROXY_HOPS", "PARLEY_TLS", "BIND", "PARLEY_URL"} <= read
    named = settings_named_in_deploy_files()
    assert {"PARLEY_TLS", "PROXY_HOPS", "REDIS_URL"} <= named["parley.env.example"]
    unknown = {name: sorted(names - read) for name, names in named.items() if names - read}
    assert not unknown, f"not read anywhere in Parley: {unknown}"


def test_the_env_example_sets_what_running_behind_nginx_needs() -> None:
    settings = dict(
        line.split("=", 1)
        for line in (DEPLOY / "parley.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["PARLEY_TLS"] == "0" and settings["PROXY_HOPS"] == "1"
    assert settings["PARLEY_ENV"] == "production"
    upstream = re.search(r"server (\S+);", (DEPLOY / "nginx.conf").read_text())
    assert upstream and upstream.group(1) == settings["BIND"]


def verify(units: list[Path]) -> str:
    """Run `systemd-analyze verify` and return what it said (it warns and still exits 0)."""
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True
    )
    return f"exit {result.returncode}: {result.stdout}{result.stderr}".strip()


@requires_systemd_analyze
def test_the_parley_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = []
    for unit in sorted(DEPLOY.glob("*.service")):
        installed = tmp_path / unit.name
        installed.write_text(unit.read_text().replace(INSTALL_DIR, str(ROOT)))
        units.append(installed)
    assert [u.name for u in units] == ["parley-echo.service", "parley-web.service"]
    assert verify(units) == "exit 0:"


@requires_systemd_analyze
@pytest.mark.skipif(not DEBIAN_COTURN.exists(), reason="Debian's coturn package is not installed")
def test_the_coturn_drop_in_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "coturn.service"
    shutil.copy(DEBIAN_COTURN, unit)
    shutil.copytree(DEPLOY / "coturn.service.d", tmp_path / "coturn.service.d")
    assert verify([unit]) == "exit 0:"
