"""A network switch mid-call: the call restarts ICE at once and media comes back on a new path.

The call runs relay-only through the test coturn; restarting coturn drops every allocation, so the
candidate pair in use is dead (as after a Wi-Fi/mobile switch) although ICE does not know it yet.
Then the page hears of the change the way a phone would: the browser goes online again, the
network's type changes (navigator.connection), or the signalling socket drops and comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from backend.turnserver import LocalTurn
from harness.calls import (
    connected_call,
    relay_call,
    status,
    switch_network,
    wait_media_flowing,
    wait_until,
)
from harness.people import User

# Kept in the page: what happened and when (performance.now(), ms), in order. The listeners on
# window capture, so the browser's event is logged before the app's handlers act on it.
RECORD = """() => {
    const log = (window.__network = []);
    const note = (what) => log.push({what, at: performance.now()});
    const peer = window.parley.calls.call.other;
    peer.addEventListener("restart", (e) => note(`restart:${e.detail.reason}`));
    peer.addEventListener("description", (e) => note(`description:${e.detail.type}`));
    const pc = peer.pc;
    pc.addEventListener("connectionstatechange", () => note(`state:${pc.connectionState}`));
    window.addEventListener("online", () => note("event:online"), {capture: true});
    if (navigator.connection) {
        const changed = () => note("event:connection");
        navigator.connection.addEventListener("change", changed, {capture: true});
    }
    const socket = window.parley.signaling;
    socket.addEventListener("welcome", () => note("event:welcome"));
    socket.addEventListener("state", (e) => note(`socket:${e.detail.state}`));
    socket.addEventListener("call_description", (e) => note(`got:${e.detail.description.type}`));
    const line = document.getElementById("call-status");
    let shown = line.textContent;
    new MutationObserver(() => {
        if (line.textContent !== shown) note(`status:${(shown = line.textContent)}`);
    }).observe(line, {childList: true, characterData: true, subtree: true});
}"""


def events(page: Page) -> list[dict[str, object]]:
    """What the page recorded since RECORD, in order."""
    return list(page.evaluate("() => window.__network"))


def first(log: list[dict[str, object]], prefix: str, after: float = -1.0) -> float | None:
    """When the first entry starting with `prefix` (after `after`) happened; None if none did."""
    for entry in log:
        at = float(entry["at"])  # type: ignore[arg-type]
        if str(entry["what"]).startswith(prefix) and at > after:
            return at
    return None


def wait_media_stalled(user: User, seconds: float = 20) -> None:
    """Wait until no media bytes arrive for half a second: the path in use is dead."""
    deadline = time.monotonic() + seconds
    last = -1
    while time.monotonic() < deadline:
        stats = user.stats()
        received = stats["inbound"]["bytes"] if stats else -1
        if received == last:
            return
        last = received
        time.sleep(0.5)
    raise AssertionError(f"media still flows for {user.engine} {user.username}: {user.stats()}")


# Which restart reasons each way of switching may give: Chromium going online again also fires
# "change" on navigator.connection, whichever of the two it raises first starts the restart.
REASONS = {
    "online": ("online", "connection"),
    "connection": ("connection",),
    "signaling": ("signaling",),
}


@pytest.mark.parametrize(
    ("trigger", "engines"),
    [
        ("online", ("chromium", "chromium")),
        ("online", ("chromium", "firefox")),
        ("online", ("firefox", "chromium")),
        ("connection", ("chromium", "chromium")),
        ("signaling", ("chromium", "chromium")),
        ("signaling", ("chromium", "firefox")),
    ],
    ids=lambda p: p if isinstance(p, str) else "-".join(p),
)
def test_a_network_change_restarts_ice_at_once_and_media_comes_back(
    coturn: LocalTurn,
    relay_user: Callable[[str], User],
    trigger: str,
    engines: tuple[str, str],
) -> None:
    alice, bob = relay_call(relay_user, engines)
    alice.page.evaluate(RECORD)
    coturn.restart()  # the relayed pair in use is dead from here on; ICE has not noticed yet
    wait_media_stalled(alice)
    alice.page.evaluate("() => window.__network.push({what: 'switch', at: performance.now()})")
    switch_network(alice, trigger)

    try:
        wait_media_flowing(alice, video=True)
        wait_media_flowing(bob, video=True)
    except AssertionError as error:  # both sides' view, and what alice's page went through
        seen = f"{bob.engine}: {bob.stats()}\n{events(alice.page)}"
        raise AssertionError(f"{error}\n{seen}") from None
    expect(status(alice.page)).to_have_text("Connected")
    log = events(alice.page)
    switched = first(log, "switch")
    assert switched is not None, log
    # The event itself started the restart (not the path going down), and its offer went out
    # before ICE declared the path failed (the old way waited for "disconnected" or "failed").
    restart = first(log, "restart:", switched)
    assert restart is not None, log
    reason = next(str(e["what"]) for e in log if e["at"] == restart).split(":")[1]
    assert reason in REASONS[trigger], log
    heard = first(log, "event:welcome" if reason == "signaling" else f"event:{reason}", switched)
    assert heard is not None, log
    offer = first(log, "description:offer", restart)
    assert offer is not None, log
    failed = first(log, "state:failed")
    assert failed is None or offer < failed, log
    # "Reconnecting…" from the restart until media flowed again, then "Connected".
    reconnecting = first(log, "status:Reconnecting…", switched)
    assert reconnecting is not None, log
    back = first(log, "status:Connected", reconnecting)
    assert back is not None, log
    # From the event the page acted on: the socket's welcome comes a round trip before the restart.
    took = (back - (heard if reason == "signaling" else restart)) / 1000
    print(f"\n{trigger} {'-'.join(engines)}: media back {took:.2f} s after the {reason} event")
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("chromium", "firefox")], ids="-".join
)
def test_a_connection_that_ice_calls_connected_but_brings_no_media_is_replaced(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    # After some ICE restarts between Chromium and Firefox, ICE says "connected" and consent checks
    # pass while one side's RTP is dropped (docs/benchmarks.md, section 6). Here bob's connection
    # stops sending media the same way: its senders lose their tracks, its ICE and DTLS stay up.
    alice, bob = connected_call(make_user, engines)
    wait_media_flowing(bob, video=True)
    alice.page.evaluate(RECORD)
    alice.page.evaluate("() => { window.__stalledPeer = window.parley.calls.call.other; }")
    bob.page.evaluate(
        "() => Promise.all(window.parley.calls.call.other.pc.getSenders()"
        ".map((sender) => sender.replaceTrack(null)))"
    )
    # alice's side sees ICE connected and nothing coming, says so, and makes a new connection,
    # which bob answers from a new connection of its own: media flows both ways again.
    wait_until(
        lambda: alice.page.evaluate(
            "() => ![null, window.__stalledPeer].includes(window.parley.calls.call.other)"
        ),
        "alice's connection was not replaced",
        seconds=40,
    )
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    expect(status(alice.page)).to_have_text("Connected")
    expect(status(bob.page)).to_have_text("Connected")
    log = [str(e["what"]) for e in events(alice.page)]
    assert "status:Reconnecting…" in log, log
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
