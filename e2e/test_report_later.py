"""A call report is not lost when the socket is down as the call ends: it goes when it is back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from harness.browsers import OWN_CONNECTION
from harness.calls import connected_call, status, wait_media_flowing, wait_until
from harness.people import User, room_id


def sides(user: User) -> dict[str, Any]:
    """The reports of the newest call record in the user's open room, as the API gives them."""
    response = user.context.request.get(
        f"/api/rooms/{room_id(user.page)}/messages", headers=OWN_CONNECTION
    )
    assert response.ok, response.text()
    calls = [m["call"] for m in response.json()["messages"] if m["kind"] == "call"]
    return dict(calls[-1]["reports"]) if calls else {}


def kept(user: User) -> list[dict[str, Any]]:
    """The reports the page keeps for later (rejoin.js)."""
    stored = user.page.evaluate("() => localStorage.getItem('parley.reports')")
    return list(json.loads(stored or "[]"))


def sampled(user: User) -> bool:
    """Whether the live call's report card has seen the selected candidate pair yet."""
    return bool(user.page.evaluate("() => Boolean(window.parley.calls.call?.card?.pair)"))


# New sockets of the page go to a path the server does not upgrade, until window.cutOff is false.
CUT_OFF = """() => {
    window.cutOff = true;
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
        constructor(url, protocols) {
            super(window.cutOff ? `${url}-cut-off` : url, protocols);
        }
    };
}"""


def test_a_report_made_while_the_socket_is_down_reaches_the_record_when_it_is_back(
    make_user: Callable[..., User],
) -> None:
    alice, bob = connected_call(make_user, ("chromium", "chromium"))
    wait_media_flowing(bob, video=True)
    wait_until(lambda: sampled(alice), "no stats walk saw the path", 30)

    # alice's socket drops and cannot come back (its handshakes fail, as off the network); she
    # hangs up meanwhile.
    alice.page.evaluate(CUT_OFF)
    alice.page.evaluate("() => window.parley.signaling.ws.close(4001, 'network gone')")
    wait_until(
        lambda: alice.page.evaluate("() => window.parley.signaling.state") == "reconnecting",
        "the socket did not go down",
    )
    alice.page.get_by_role("button", name="End call").click()
    expect(status(alice.page)).to_contain_text("Call ended")
    waiting = kept(alice)
    assert [k["frame"]["type"] for k in waiting] == ["call_report"], waiting
    assert waiting[0]["frame"]["path"] == "direct", waiting
    assert not sides(bob).get("caller"), sides(bob)

    # Back online: the socket returns, the call ends on the server and alice's report is taken.
    alice.page.evaluate("() => { cutOff = false; window.dispatchEvent(new Event('online')); }")
    wait_until(
        lambda: bool(sides(bob).get("caller")),
        f"alice's report never reached the record: {sides(bob)}",
        30,
    )
    report = sides(bob)["caller"]
    assert report["path"] == "direct" and report["duration_s"] >= 1, report
    expect(status(bob.page)).to_contain_text("Call ended")
    wait_until(lambda: kept(alice) == [], f"still kept: {kept(alice)}")
