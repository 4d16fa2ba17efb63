"""The house rules of the code's layout (docs/architecture.md), checked so they stay true."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from harness.servers import ROOT

MAX_LINES = 450


def production_sources() -> list[Path]:
    """Return every hand-written production source file: the backend and the PWA (not
    pwa/js/wire.js, which `flask protocol-js` writes from the models)."""
    backend = [p for p in (ROOT / "backend").rglob("*.py") if "migrations" not in p.parts]
    pwa = [p for p in (ROOT / "pwa").rglob("*.js") if p.name != "wire.js"]
    return sorted(backend + pwa)


def imports_of(path: Path) -> set[str]:
    """Return the absolute module names a Python file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", production_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_production_source_file_is_longer_than_a_room_should_be(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by job"


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for folder in ("tests", "e2e", "bench", "harness"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in imports_of(path):
                parts = name.split(".")
                if parts[0] in ("tests", "e2e") and (
                    len(parts) == 1 or parts[1].startswith("test_") or parts[1] == "conftest"
                ):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_web_process_never_imports_aiortc_or_the_python_peer() -> None:
    offenders = []
    for path in (ROOT / "backend").rglob("*.py"):
        if "peer" in path.relative_to(ROOT / "backend").parts[:1]:
            continue
        for name in imports_of(path):
            if name.split(".")[0] in ("aiortc", "av") or name.startswith("backend.peer"):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_only_views_touch_the_dom_and_only_peer_js_touches_rtcpeerconnection() -> None:
    # Elements, not page lifecycle: the socket and the updater may hear visibilitychange.
    dom = re.compile(r"getElementById|querySelector|createElement|innerHTML|document\.body")
    for path in (ROOT / "pwa" / "js").glob("*.js"):
        text = path.read_text()
        if path.name != "main.js":  # boot and wiring: it finds the elements views mount on
            assert not dom.search(text), f"{path.name} touches the DOM; that is for views/"
        # peer.js: a mesh pair; sfulink.js: an SFU call's two connections; conncheck.js: gathering.
        if path.name not in ("peer.js", "sfulink.js", "conncheck.js"):
            assert "new RTCPeerConnection(" not in text, f"{path.name} makes a peer connection"
    for path in (ROOT / "pwa" / "js" / "views").glob("*.js"):
        text = path.read_text()
        assert not re.search(r"RTCPeerConnection\(|\.pc\b|getStats\(", text), (
            f"views/{path.name} touches a peer connection"
        )
