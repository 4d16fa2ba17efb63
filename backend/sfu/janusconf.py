"""Write a Janus configuration folder for Parley: the VideoRoom plugin behind the HTTP transport.

Parley is Janus's only client. The folder this writes loads one plugin (VideoRoom) and one
transport (HTTP, on the address given, never the WebSocket one), requires an API secret on every
request and an admin key to create rooms, and keeps every other plugin, transport, logger and
event handler off. `make run` and the tests' fixture (harness/janus.py) both use it;
deploy/janus/ holds the same settings for a production host.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from pathlib import Path

PLUGIN = "libjanus_videoroom.so"
TRANSPORT = "libjanus_http.so"


def janus_binary() -> str | None:
    """Return the path of Debian's `janus` executable, or None when it is not installed."""
    return shutil.which("janus") or next(iter(glob.glob("/usr/bin/janus")), None)


def janus_lib_folder() -> Path | None:
    """Return the folder holding Janus's plugins/ and transports/ (Debian's multiarch path)."""
    for found in sorted(glob.glob("/usr/lib/*/janus")) + ["/usr/lib/janus", "/opt/janus/lib/janus"]:
        if (Path(found) / "plugins" / PLUGIN).exists():
            return Path(found)
    return None


@dataclass(frozen=True)
class JanusConfig:
    """What differs between one Janus and another: where it listens and its two secrets."""

    folder: Path
    http_ip: str
    http_port: int
    api_secret: str
    admin_key: str
    rtp_ports: tuple[int, int] = (20000, 40000)
    session_timeout: int = 60
    debug_level: int = 4
    # Parley's /api/turn/janus, for Janus's own TURN credentials ("" for none): Janus presents
    # its API secret as the key. Plain HTTP to gunicorn on a private address: libcurl in Janus
    # trusts only the system's authorities, and this keeps the key out of proxies' logs.
    turn_rest_api: str = ""

    @property
    def url(self) -> str:
        """The API's address, as Parley's JANUS_URL names it."""
        host = f"[{self.http_ip}]" if ":" in self.http_ip else self.http_ip
        return f"http://{host}:{self.http_port}/janus"

    def write(self) -> Path:
        """Write janus.jcfg and the two files it loads into `folder` (0700); return the main one."""
        lib = janus_lib_folder()
        if lib is None:
            raise FileNotFoundError("Janus's plugins are not installed (Debian package janus)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        others = _others(lib / "plugins", PLUGIN), _others(lib / "transports", TRANSPORT)
        main = self.folder / "janus.jcfg"
        main.write_text(
            "general: {\n"
            f'  configs_folder = "{self.folder}"\n'
            f'  plugins_folder = "{lib}/plugins"\n'
            f'  transports_folder = "{lib}/transports"\n'
            f'  events_folder = "{lib}/events"\n'
            f'  loggers_folder = "{lib}/loggers"\n'
            f"  debug_level = {self.debug_level}\n"
            f'  api_secret = "{self.api_secret}"\n'
            f"  session_timeout = {self.session_timeout}\n"
            '  server_name = "parley-janus"\n'
            "}\n"
            f'media: {{ rtp_port_range = "{self.rtp_ports[0]}-{self.rtp_ports[1]}" }}\n'
            f"nat: {{ {self._nat()} }}\n"
            f'plugins: {{ disable = "{others[0]}" }}\n'
            f'transports: {{ disable = "{others[1]}" }}\n'
            "events: { broadcast = false }\n"
            f'loggers: {{ disable = "{_others(lib / "loggers", "")}" }}\n'
        )
        (self.folder / "janus.transport.http.jcfg").write_text(
            "general: {\n"
            '  json = "compact"\n  base_path = "/janus"\n  http = true\n  https = false\n'
            f'  port = {self.http_port}\n  ip = "{self.http_ip}"\n'
            "}\n"
            "admin: { admin_http = false admin_https = false }\n"
        )
        (self.folder / "janus.plugin.videoroom.jcfg").write_text(
            f'general: {{ admin_key = "{self.admin_key}" lock_rtp_forward = true }}\n'
        )
        for name in ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.videoroom.jcfg"):
            (self.folder / name).chmod(0o600)
        return main

    def _nat(self) -> str:
        nat = 'ice_ignore_list = "vmnet" ignore_mdns = true'
        if self.turn_rest_api:
            nat += (
                f' turn_rest_api = "{self.turn_rest_api}" turn_rest_api_key = "{self.api_secret}"'
                ' turn_rest_api_method = "POST" turn_rest_api_timeout = 5'
            )
        return nat

    def command(self, binary: str = "janus") -> list[str]:
        """Return the command line that runs Janus with this folder, logging to stdout."""
        main = str(self.folder / "janus.jcfg")
        return [binary, "-F", str(self.folder), "-C", main, "-o", "-i", self.http_ip]


def _others(folder: Path, keep: str) -> str:
    """Name every shared library in folder but `keep`, as Janus's `disable` lists want them."""
    names = sorted(p.name for p in folder.glob("*.so") if p.name != keep)
    return ",".join(names)
