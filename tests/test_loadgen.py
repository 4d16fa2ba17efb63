"""bench/loadgen.py, the load generator for a deployed Parley, against a real local server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.servers import ROOT, ParleyServer, make_test_certs, parley_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("loadgen")
    with parley_server(root, make_test_certs(root / "certs")) as running:
        yield running


def loadgen(server: ParleyServer, state: Path, *flags: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--url", server.url,
         "--ca", str(server.certs / "ca.crt"), "--state", str(state), *flags],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_loadgen_stops_at_its_message_budget_and_every_frame_arrives(
    server: ParleyServer, tmp_path: Path
) -> None:
    state = tmp_path / "cookies.json"
    flags = ("--pairs", "2", "--duration", "30", "--max-messages", "40", "--rate", "10")
    result = loadgen(server, state, *flags)
    assert result["frames_sent"] == 40  # the budget, long before 30 s of 4 sockets at 10/s
    assert result["errors"] == {}
    assert result["chat_acked"] == 4  # every 10th frame of each socket's count is a chat message
    assert result["chat_delivered"] == 4
    assert result["candidates_received"] == 36
    relay = result["relay_ms"]
    assert isinstance(relay, dict) and relay["p50"] is not None
    # Its own cost, which every relay latency includes: CPU and how late its loop ran timers.
    own = result["generator"]
    assert isinstance(own, dict) and own["cpu_s"] > 0 and own["loop_lag_ms"]["p99"] is not None
    # A second run signs in with the kept cookies, not the password.
    assert set(json.loads(state.read_text())) == {f"loadgen{n}" for n in range(4)}
    again = loadgen(server, state, "--pairs", "2", "--duration", "1", "--max-messages", "8")
    assert again["frames_sent"] == 8 and again["errors"] == {}


def test_sign_in_only_keeps_the_cookies_and_sends_no_frame(
    server: ParleyServer, tmp_path: Path
) -> None:
    state = tmp_path / "cookies.json"
    result = loadgen(server, state, "--pairs", "1", "--prefix", "signin", "--sign-in-only")
    assert "frames_sent" not in result
    assert set(json.loads(state.read_text())) == {"signin0", "signin1"}
