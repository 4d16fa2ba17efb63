"""The Python peer's call report card: its side of an ended call lands on the call record."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from backend.peer.client import ParleyClient
from backend.peer.peer import Peer
from backend.peer.report import ReportCard
from backend.turnserver import LocalTurn
from harness import aio
from harness.pythonpeers import client, flowing, online
from harness.servers import ParleyServer, make_test_certs, parley_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("peer-report")
    with parley_server(root, make_test_certs(root / "certs")) as running:
        yield running


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose calls may only go through a coturn on loopback."""
    turn = LocalTurn(tmp_path_factory.mktemp("coturn"), secret=secrets.token_urlsafe(24))
    turn.start()
    root = tmp_path_factory.mktemp("peer-report-relay")
    try:
        with parley_server(
            root,
            make_test_certs(root / "certs"),
            TURN_URLS=turn.urls[0],
            TURN_SECRET=turn.secret,
            ICE_TRANSPORT_POLICY="relay",
        ) as running:
            yield running
    finally:
        turn.stop()


async def reports_of(c: ParleyClient, room: int, seconds: float = 30) -> dict[str, Any]:
    """Wait until the newest call record in `room` carries both sides' reports; return them."""
    deadline = asyncio.get_running_loop().time() + seconds
    found: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = await c.api("GET", f"/api/rooms/{room}/messages")
        calls = [m["call"] for m in body["messages"] if m["kind"] == "call"]
        found = dict(calls[-1]["reports"]) if calls else {}
        if found.get("caller") and found.get("callee"):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no report from both sides: {found}")


def call_and_report(server: ParleyServer, names: tuple[str, str]) -> dict[str, Any]:
    """Two Python peers call (video), media flows both ways, the caller hangs up; the reports."""

    async def scenario() -> dict[str, Any]:
        a, b = client(server, names[0]), client(server, names[1])
        await b.sign_in()  # exists before the caller opens the room
        caller, callee = Peer(a), Peer(b)
        tasks = [await online(a, caller.handle), await online(b, callee.handle)]
        try:
            call = await caller.call(names[1], "video")
            await asyncio.wait_for(call.answered.wait(), 30)
            answered = next(iter(callee.calls.values()))
            for side in (call, answered):
                await flowing(side, ("audio", "video"))
            # A round trip needs a receiver report back (RTCP, about every second): wait for one.
            for side in (call, answered):
                await asyncio.wait_for(rtt_seen(side.card), 30)
            await caller.hang_up(call)
            await asyncio.wait_for(answered.ended.wait(), 30)
            return await reports_of(a, call.room_id)
        finally:
            for c in (a, b):
                await c.stop()
            for task in tasks:
                task.cancel()

    return aio.run(scenario())


async def rtt_seen(card: ReportCard) -> None:
    """Return once the card has a round trip from an RTCP receiver report."""
    while not card.rtts_ms:
        await asyncio.sleep(0.2)


def test_both_python_peers_report_a_direct_call_on_its_record(server: ParleyServer) -> None:
    reports = call_and_report(server, ("reportcaller", "reportcallee"))
    for side in ("caller", "callee"):
        report = reports[side]
        assert report["path"] == "direct" and report["transport"] == "udp", reports
        assert report["duration_s"] >= 1 and report["reconnects"] == 0, reports
        assert isinstance(report["rtt_ms"], int) and 0 <= report["rtt_ms"] < 1000, reports
        assert 0 <= report["loss"] <= 0.05, reports  # loopback: next to nothing lost


def test_a_relay_only_call_reports_relayed(relay_server: ParleyServer) -> None:
    reports = call_and_report(relay_server, ("relaycaller", "relaycallee"))
    for side in ("caller", "callee"):
        assert reports[side]["path"] == "relayed", reports
        assert reports[side]["transport"] == "udp", reports  # the coturn's first URL is UDP
