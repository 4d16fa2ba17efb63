"""The deployment files in deploy/ and docs/deploy.md agree with systemd and with Parley's code."""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from backend.sfu.janus import Janus, JanusError
from backend.sfu.janusconf import JanusConfig, janus_binary, janus_lib_folder
from backend.sfu.videoroom import PLUGIN
from harness.servers import ROOT, free_port

DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deploy.md"
# Where the units expect the code; the repository stands in for it (its .venv is real).
INSTALL_DIR = "/opt/parley"
DEBIAN_COTURN = Path("/lib/systemd/system/coturn.service")
DEBIAN_JANUS = Path("/lib/systemd/system/janus.service")
JANUS_DIR = DEPLOY / "janus"
JANUS_SECRETS = {"api_secret", "admin_key", "turn_rest_api_key"}  # placeholders in deploy/janus
JANUS_FILES = ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.videoroom.jcfg")
# Where the drop-in tells Janus to read deploy/janus/ from.
JANUS_INSTALLED = "/etc/janus/parley"
# Names in the guide that are not Parley's settings.
NOT_SETTINGS = {"CAP_NET_BIND_SERVICE"}

# os.environ.get("X"), os.environ["X"], and config.py's _int/_list/_bool/_choice("X").
READ_BY_CODE = re.compile(
    r"""(?:environ\.get|environ\[|getenv|_int|_list|_bool|_choice)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# NAME= lines (commented or not, or systemd Environment=), `NAME` in prose, and SNAKE_CASE words.
ASSIGNED = re.compile(r"^\s*#?\s*(?:Environment=)?([A-Z][A-Z0-9_]+)=", re.MULTILINE)
QUOTED = re.compile(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`")
SNAKE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")

# Janus's files: `section: { key = value ... }`, one level, values quoted or bare.
SECTION = re.compile(r"(\w+)\s*:\s*\{([^{}]*)\}")
ENTRY = re.compile(r'(\w+)\s*=\s*("[^"]*"|[^\s"]+)')

requires_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
requires_janus = pytest.mark.skipif(
    janus_binary() is None or janus_lib_folder() is None, reason="Debian's janus is not installed"
)


def settings_read_by_parley() -> set[str]:
    """Return every environment variable the backend, the bot and the gunicorn config read."""
    sources = [*sorted((ROOT / "backend").rglob("*.py")), DEPLOY / "gunicorn.conf.py"]
    return {name for path in sources for name in READ_BY_CODE.findall(path.read_text())}


def jcfg(text: str) -> dict[str, dict[str, str]]:
    """Parse a Janus configuration file as Janus's files use libconfig: sections of settings."""
    text = re.sub(r"#.*", "", text)  # comments (no value in these files holds a #)
    return {
        name: {key: value.strip('"') for key, value in ENTRY.findall(body)}
        for name, body in SECTION.findall(text)
    }


def janus_files(folder: Path) -> dict[str, dict[str, dict[str, str]]]:
    return {name: jcfg((folder / name).read_text()) for name in JANUS_FILES}


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


def test_the_janus_config_names_no_secret_keeps_the_api_on_loopback_and_the_admin_api_off() -> None:
    conf = janus_files(JANUS_DIR)
    main, http = conf["janus.jcfg"], conf["janus.transport.http.jcfg"]
    api_secret = main["general"]["api_secret"]
    admin_key = conf["janus.plugin.videoroom.jcfg"]["general"]["admin_key"]
    assert api_secret.startswith("change-me") and admin_key.startswith("change-me"), "placeholders"
    assert api_secret != admin_key, "two secrets, two placeholders"
    text = "".join((JANUS_DIR / name).read_text() for name in JANUS_FILES)
    assert "admin_secret" not in text and "token_auth" not in text
    assert http["general"]["ip"] == "127.0.0.1" and http["general"]["https"] == "false"
    assert http["admin"] == {"admin_http": "false", "admin_https": "false"}
    # The NAT settings a cloud host needs are there, commented, for the operator to fill in.
    for setting in ("stun_server", "nat_1_1_mapping"):
        assert re.search(rf"^\s*#{setting} = ", (JANUS_DIR / "janus.jcfg").read_text(), re.M)
    # The guide opens the media ports the config names, and sets both secrets in parley.env.
    low, high = main["media"]["rtp_port_range"].split("-")
    guide = GUIDE.read_text()
    assert f"{low}-{high}" in guide and f"{low}:{high}" in guide, "firewall ports in the guide"
    env = (DEPLOY / "parley.env.example").read_text()
    assert {"JANUS_URL", "JANUS_API_SECRET", "JANUS_ADMIN_KEY"} <= set(ASSIGNED.findall(env))
    port = http["general"]["port"]
    assert f"JANUS_URL=http://127.0.0.1:{port}/janus" in env
    # Janus's own TURN credentials come from gunicorn itself (plain HTTP, where BIND puts it),
    # with the API secret as the key.
    nat = main["nat"]
    assert nat["turn_rest_api_key"] == api_secret
    bind = re.search(r"^BIND=(\S+)$", env, re.M)
    assert bind and nat["turn_rest_api"] == f"http://{bind[1]}/api/turn/janus", nat


@requires_janus
def test_the_janus_config_has_the_settings_make_run_and_the_tests_run_janus_with(
    tmp_path: Path,
) -> None:
    """backend/sfu/janusconf.py writes what `make run` and tests/test_sfu.py run: the same here,
    but for the folders (Janus's defaults) and the secrets (placeholders)."""
    turn_rest_api = "http://127.0.0.1:8000/api/turn/janus"
    written = JanusConfig(tmp_path, "127.0.0.1", 8088, "secret", "key", turn_rest_api=turn_rest_api)
    written.write()
    ours, deployed = janus_files(tmp_path), janus_files(JANUS_DIR)
    for name, sections in ours.items():
        for section, settings in sections.items():
            for key, value in settings.items():
                if key.endswith("_folder") or key in JANUS_SECRETS:
                    continue
                there = deployed[name].get(section, {}).get(key)
                if key == "disable":  # the same plugins, whatever the order
                    assert set((there or "").split(",")) == set(value.split(",")), (name, section)
                else:
                    assert there == value, (name, section, key, there, value)


def janus_command(dropin: str, folder: Path) -> list[str]:
    """The drop-in's ExecStart, reading its configuration from `folder`."""
    lines = [line for line in dropin.splitlines() if line.startswith("ExecStart=/")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0].removeprefix("ExecStart=").replace(JANUS_INSTALLED, str(folder)))


@requires_janus
def test_janus_runs_with_the_deploy_config_only_videoroom_over_http_and_both_secrets_guard_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "parley"
    shutil.copytree(JANUS_DIR, folder)
    api_secret, admin_key, port = secrets.token_urlsafe(24), secrets.token_urlsafe(24), free_port()
    for name, old, new in [
        ("janus.jcfg", '"change-me"', f'"{api_secret}"'),
        ("janus.plugin.videoroom.jcfg", '"change-me-too"', f'"{admin_key}"'),
        ("janus.transport.http.jcfg", "port = 8088", f"port = {port}"),
    ]:
        path = folder / name
        assert old in path.read_text(), (name, old)
        path.write_text(path.read_text().replace(old, new))
    command = janus_command((DEPLOY / "janus.service.d" / "parley.conf").read_text(), folder)
    url = f"http://127.0.0.1:{port}/janus"
    log = tmp_path / "janus.log"
    with log.open("wb") as out:
        janus = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                info = httpx.get(f"{url}/info", timeout=2).json()
                break
            except httpx.HTTPError:
                assert janus.poll() is None, f"janus exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no answer:\n{log.read_text()}"
                time.sleep(0.1)
        assert list(info["plugins"]) == [PLUGIN], info["plugins"]
        assert list(info["transports"]) == ["janus.transport.http"], info["transports"]
        assert info["api_secret"] is True and info["server-name"] == "parley-janus"
        # No request without the API secret; no room without the admin key.
        refused = httpx.post(url, json={"janus": "create", "transaction": "t"}, timeout=5).json()
        assert refused["janus"] == "error" and refused["error"]["code"] == 403, refused
        api = Janus(url, api_secret, timeout=10)
        session = api.session()
        try:
            handle = session.attach(PLUGIN, lambda event: None)
            with pytest.raises(JanusError, match="admin"):
                session.message(handle, {"request": "create", "admin_key": "wrong"})
            made = session.message(handle, {"request": "create", "admin_key": admin_key})
            assert made["plugindata"]["data"]["videoroom"] == "created", made
        finally:
            session.destroy()
            api.close()
    finally:
        janus.terminate()
        janus.wait(20)


@requires_systemd_analyze
@pytest.mark.skipif(not DEBIAN_JANUS.exists(), reason="Debian's janus package is not installed")
def test_the_janus_drop_in_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "janus.service"
    shutil.copy(DEBIAN_JANUS, unit)
    shutil.copytree(DEPLOY / "janus.service.d", tmp_path / "janus.service.d")
    assert verify([unit]) == "exit 0:"
