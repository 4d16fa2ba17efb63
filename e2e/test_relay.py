"""Calls through a real coturn only (iceTransportPolicy relay), with credentials that expire."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from backend.turnserver import LocalTurn
from harness.calls import (
    RELAY_TTL,
    hang_up_once_sent,
    relay_call,
    run_peer,
    status,
    wait_media_flowing,
    wait_until,
)
from harness.people import User
from harness.servers import ParleyServer

# coturn, relay_server and relay_user (a relay-only server with RELAY_TTL credentials) are
# e2e/conftest.py's.


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
    time.sleep(RELAY_TTL + 1)  # the credential's lifetime is wall-clock time
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
