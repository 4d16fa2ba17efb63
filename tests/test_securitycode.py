"""The security code: both sides agree, a swapped fingerprint shows, Python equals the JS."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from playwright.sync_api import sync_playwright

from backend.peer.securitycode import EMOJI, fingerprints, security_code
from harness import aio
from harness.browsers import launch, off_the_loop
from harness.servers import ROOT

ALICE = "AB:" * 31 + "01"
BOB = "CD:" * 31 + "02"
MALLORY = "EF:" * 31 + "03"


def sdp(*lines: str, session: str = "") -> str:
    """A description with `session` fingerprint lines before the media section and `lines` in it."""
    head = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if session:
        head.append(f"a=fingerprint:sha-256 {session}")
    media = ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", *lines, "a=setup:actpass"]
    return "\r\n".join([*head, *media]) + "\r\n"


# (first description, second description, the code's words): pinned once, computed by both
# pwa/js/securitycode.js and backend/peer/securitycode.py.
VECTORS: list[tuple[str, str, list[str]]] = [
    (
        sdp(f"a=fingerprint:sha-256 {ALICE}"),
        sdp(f"a=fingerprint:sha-256 {BOB}"),
        ["Unicorn", "Hat", "Cactus", "Fire"],
    ),
    (
        sdp(session=ALICE),  # session level (as Firefox writes it) against media level
        sdp(f"a=fingerprint:sha-256 {BOB}"),
        ["Unicorn", "Hat", "Cactus", "Fire"],
    ),
    (
        # Lower-case hex, an upper-case algorithm and repeats change nothing.
        sdp(f"a=fingerprint:sha-256 {ALICE.lower()}", f"a=fingerprint:sha-256 {ALICE}"),
        sdp(f"a=fingerprint:SHA-256 {BOB}"),
        ["Unicorn", "Hat", "Cactus", "Fire"],
    ),
    (
        # aiortc lists several algorithms: every fingerprint of a side counts.
        sdp(f"a=fingerprint:sha-256 {ALICE}", "a=fingerprint:sha-384 " + "11:" * 47 + "22"),
        sdp(f"a=fingerprint:sha-256 {BOB}"),
        ["Key", "Santa", "Folder", "Pig"],
    ),
    (
        sdp(f"a=fingerprint:sha-256 {ALICE}"),
        sdp(f"a=fingerprint:sha-256 {MALLORY}"),
        ["Heart", "Moon", "Pig", "Bell"],
    ),
]


def test_the_order_of_the_two_descriptions_does_not_matter() -> None:
    for first, second, _ in VECTORS:
        assert security_code(first, second) == security_code(second, first)


def test_the_pinned_vectors() -> None:
    for first, second, words in VECTORS:
        code = security_code(first, second)
        assert code is not None
        assert list(code.words) == words
        assert [EMOJI[[w for _, w in EMOJI].index(word)][0] for word in words] == list(code.emoji)


def test_a_fingerprint_swapped_in_the_middle_changes_the_code() -> None:
    """The server hands each side Mallory's fingerprint: the two screens then disagree."""
    honest = security_code(
        sdp(f"a=fingerprint:sha-256 {ALICE}"), sdp(f"a=fingerprint:sha-256 {BOB}")
    )
    alice_sees = security_code(
        sdp(f"a=fingerprint:sha-256 {ALICE}"), sdp(f"a=fingerprint:sha-256 {MALLORY}")
    )
    bob_sees = security_code(
        sdp(f"a=fingerprint:sha-256 {BOB}"), sdp(f"a=fingerprint:sha-256 {MALLORY}")
    )
    assert alice_sees != bob_sees
    assert honest not in (alice_sees, bob_sees)


def test_one_changed_digit_changes_the_code() -> None:
    base = security_code(sdp(f"a=fingerprint:sha-256 {ALICE}"), sdp(f"a=fingerprint:sha-256 {BOB}"))
    changed = security_code(
        sdp(f"a=fingerprint:sha-256 {ALICE[:-1]}2"), sdp(f"a=fingerprint:sha-256 {BOB}")
    )
    assert base != changed


def test_no_code_without_a_fingerprint_on_both_sides() -> None:
    assert security_code(sdp(), sdp(f"a=fingerprint:sha-256 {BOB}")) is None
    assert security_code(sdp(f"a=fingerprint:sha-256 {ALICE}"), "") is None


def test_the_table_has_64_distinct_emoji_and_names() -> None:
    assert len(EMOJI) == 64
    assert len({e for e, _ in EMOJI}) == 64
    assert len({w.lower() for _, w in EMOJI}) == 64


def test_two_aiortc_peers_compute_the_same_code() -> None:
    """Real negotiated descriptions: each side's (local, remote) gives the same code."""

    async def negotiate() -> tuple[Any, Any]:
        a, b = RTCPeerConnection(), RTCPeerConnection()
        try:
            a.addTransceiver("audio")
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
            return (
                security_code(a.localDescription.sdp, a.remoteDescription.sdp),
                security_code(b.localDescription.sdp, b.remoteDescription.sdp),
            )
        finally:
            await a.close()
            await b.close()

    mine, theirs = aio.run(negotiate())
    assert mine is not None
    assert mine == theirs


@pytest.fixture(scope="module")
def pwa_url() -> Iterator[str]:
    """pwa/ over plain HTTP on loopback (a secure context, so crypto.subtle exists)."""
    handler = functools.partial(_QuietHandler, directory=str(ROOT / "pwa"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Keep the test output to the test's own."""


def random_sdp(rng: random.Random) -> str:
    value = ":".join(f"{rng.randrange(256):02X}" for _ in range(32))
    return sdp(f"a=fingerprint:sha-256 {value}")


def test_the_page_computes_what_python_computes(pwa_url: str) -> None:
    """pwa/js/securitycode.js in Chromium: same table, same codes on pinned and random pairs."""
    rng = random.Random(17)
    pairs = [(a, b) for a, b, _ in VECTORS] + [
        (random_sdp(rng), random_sdp(rng)) for _ in range(300)
    ]

    def in_chromium() -> tuple[list[list[str]], list[Any]]:
        with sync_playwright() as p:
            browser = launch(p, "chromium")
            try:
                page = browser.new_page()
                page.goto(f"{pwa_url}/manifest.webmanifest")
                found: tuple[list[list[str]], list[Any]] = page.evaluate(
                    """async ({url, pairs}) => {
                        const m = await import(url);
                        const codes = [];
                        for (const [a, b] of pairs) codes.push(await m.securityCode(a, b));
                        return [m.EMOJI, codes];
                    }""",
                    {"url": f"{pwa_url}/js/securitycode.js", "pairs": pairs},
                )
                return found
            finally:
                browser.close()

    table, codes = off_the_loop(in_chromium)
    assert [tuple(pair) for pair in table] == list(EMOJI)
    for (a, b), code in zip(pairs, codes, strict=True):
        expected = security_code(a, b)
        assert expected is not None
        assert code == expected.to_json(), (a, b)
    assert fingerprints(pairs[0][0]) == f"sha-256 {ALICE}"
