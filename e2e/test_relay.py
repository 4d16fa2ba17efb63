"""Calls through a real coturn only (iceTransportPolicy relay), with credentials that expire."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from backend.turnserver import LocalTurn
from harness.calls import (
    connected_call,
    hang_up_once_sent,
    run_peer,
    status,
    wait_media_flowing,
    wait_until,
)
from harness.people import User, people_on
from harness.servers import ParleyServer, make_test_certs, parley_server

TTL = 4


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTurn]:
    turn = LocalTurn(tmp_path_factory.mktemp("coturn"), secret=secrets.token_urlsafe(24))
    turn.start()
    yield turn
    turn.stop()


@pytest.fixture(scope="module")
def relay_server(
    coturn: LocalTurn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("relay")
    with parley_server(
        root,
        make_test_certs(root / "certs"),
        TURN_URLS=coturn.urls[0],
        TURN_SECRET=coturn.secret,
        TURN_TTL=str(TTL),
        ICE_TRANSPORT_POLICY="relay",  # the test-only setting: no host or STUN paths
    ) as server:
        yield server


@pytest.fixture
def relay_user(
    relay_server: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[[str], User]]:
    with people_on(relay_server, browsers, "relay") as make:
        yield make


def selected_pairs(user: User) -> list[dict]:  # type: ignore[type-arg]
    stats = user.stats()
    assert stats is not None
    return [
        p for p in stats["pairs"] if p["selected"] or (p["nominated"] and p["state"] == "succeeded")
    ]


def ice_generation(page: Page) -> dict[str, str]:
    """The ICE ufrags of both descriptions and the ICE and signalling states of the call."""
    return dict(
        page.evaluate(
            """() => {
                const pc = window.parley.calls.call.other.pc;
                const ufrag = (d) => ((d && /a=ice-ufrag:(\\S+)/.exec(d.sdp)) || [])[1] || "";
                return {local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription),
                        ice: pc.iceConnectionState, signaling: pc.signalingState};
            }"""
        )
    )


def relay_call(relay_user: Callable[[str], User], engines: tuple[str, str]) -> tuple[User, User]:
    """A connected call between two people on the relay-only server, media flowing both ways."""
    alice, bob = connected_call(relay_user, engines)
    wait_media_flowing(bob, video=True)
    return alice, bob


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("chromium", "firefox")], ids="-".join
)
def test_a_relay_only_call_connects_with_every_selected_pair_relayed(
    relay_user: Callable[[str], User], engines: tuple[str, str]
) -> None:
    alice, bob = relay_call(relay_user, engines)
    for person in (alice, bob):
        pairs = selected_pairs(person)
        assert pairs, person.stats()
        assert all(p["localType"] == "relay" and p["remoteType"] == "relay" for p in pairs), pairs
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


def test_a_relay_call_outlives_its_credentials_and_restarts_with_fresh_ones(
    relay_user: Callable[[str], User],
) -> None:
    alice, bob = relay_call(relay_user, ("chromium", "chromium"))
    fetched: list[str] = []
    alice.page.on("request", lambda r: fetched.append(r.url) if "/ice-servers" in r.url else None)
    # Past TURN_TTL the media keeps flowing on the allocation made with the old credential...
    time.sleep(TTL + 1)  # the credential's lifetime is wall-clock time
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    # ...and an ICE restart after the expiry fetches fresh credentials and connects again.
    before = ice_generation(alice.page)
    alice.page.evaluate("() => window.parley.calls.restartIce()")
    wait_until(lambda: bool(fetched), "no fresh credentials before the ICE restart", 30)

    def restarted() -> bool:
        now = ice_generation(alice.page)
        return (
            now["local"] != before["local"]
            and now["remote"] != before["remote"]
            and now["ice"] in ("connected", "completed")
            and now["signaling"] == "stable"
        )

    wait_until(restarted, f"the ICE restart did not complete: {ice_generation(alice.page)}", 60)
    expect(status(alice.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    for person in (alice, bob):
        assert all(p["localType"] == "relay" for p in selected_pairs(person))
    alice.page.get_by_role("button", name="End call").click()


def test_a_relay_only_call_between_the_python_peer_and_a_browser(
    relay_server: ParleyServer, relay_user: Callable[[str], User]
) -> None:
    me = relay_user("chromium")
    peer = run_peer(relay_server, "call", me.username, "--media", "video", "--seconds", "300")
    expect(me.page.get_by_role("alertdialog", name="Incoming call")).to_be_visible(timeout=30_000)
    me.page.get_by_role("button", name="Accept").click()
    expect(status(me.page)).to_have_text("Connected")
    wait_media_flowing(me, video=True)
    pairs = selected_pairs(me)
    assert pairs and all(p["localType"] == "relay" and p["remoteType"] == "relay" for p in pairs)
    hang_up_once_sent(me)
    out, _ = peer.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["frames_received"]["video"] > 20, stats


def test_a_broken_relay_path_heals_by_ice_restart_when_it_returns(
    coturn: LocalTurn, relay_user: Callable[[str], User]
) -> None:
    alice, bob = relay_call(relay_user, ("chromium", "chromium"))
    coturn.stop()  # the only path between them is gone
    expect(status(alice.page)).to_have_text("Reconnecting…", timeout=30_000)
    coturn.start()
    back = time.monotonic()
    wait_media_flowing(alice, video=True, seconds=30)
    wait_media_flowing(bob, video=True, seconds=30)
    print(f"media back {time.monotonic() - back:.1f} s after the relay returned")
    expect(status(alice.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="End call").click()
