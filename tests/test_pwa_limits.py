"""The browser's copy of the server's limits matches the server."""

from __future__ import annotations

import re

from backend import chat
from backend.signaling import protocol
from harness.servers import ROOT


def js_constant(name: str) -> int:
    """Read `export const NAME = <int>;` from pwa/js/protocol.js."""
    source = (ROOT / "pwa" / "js" / "protocol.js").read_text()
    match = re.search(rf"^export const {name} = (\d+);$", source, re.MULTILINE)
    assert match, f"{name} not found in pwa/js/protocol.js"
    return int(match.group(1))


def test_the_composer_limit_is_the_servers_chat_text_limit() -> None:
    assert js_constant("MAX_TEXT") == chat.MAX_TEXT == protocol.MAX_TEXT
