"""Both sides of a call show the same security code, worked out from both DTLS fingerprints."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from backend.peer.securitycode import security_code
from harness.calls import place_call, run_peer, status, wait_media_flowing
from harness.people import SCREENSHOTS, User, open_room
from harness.servers import ParleyServer
from harness.viewports import PHONE


def shown_code(user: User) -> str:
    """The code's names as the call screen shows them, once it is there."""
    code = user.page.get_by_role("group", name="Security code")
    expect(code).to_be_visible()
    words = code.locator(".code-words")
    expect(words).not_to_be_empty()
    return words.inner_text()


def code_from_the_page_sdp(user: User) -> str:
    """The code the Python derivation gives for the descriptions the page exchanged."""
    local, remote = user.page.evaluate(
        """() => {
            const call = window.parley.calls.call;
            return [call.other.pc.localDescription.sdp, call.other.remoteSdp];
        }"""
    )
    assert "a=fingerprint:" in local and "a=fingerprint:" in remote
    code = security_code(local, remote)
    assert code is not None
    return code.text


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("chromium", "firefox")], ids=lambda p: "-".join(p)
)
def test_both_sides_of_a_call_show_the_same_security_code(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice = make_user(engines[0], **PHONE)
    bob = make_user(engines[1], **(PHONE if engines[1] == "chromium" else {}))
    open_room(alice, bob)
    place_call(alice, bob)
    # Not before the call connects: there is nothing to vouch for while it rings.
    expect(alice.page.get_by_role("group", name="Security code")).to_be_hidden()
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=True)
    codes = [shown_code(person) for person in (alice, bob)]
    assert codes[0] == codes[1], codes
    assert len(codes[0].split(" · ")) == 4, codes
    # Four emoji beside the names, and the same code from each page's SDP in Python.
    emoji = alice.page.get_by_role("group", name="Security code").locator(".code-emoji > span")
    expect(emoji).to_have_count(4)
    for person in (alice, bob):
        assert code_from_the_page_sdp(person) == codes[0]
    if engines == ("chromium", "chromium"):
        SCREENSHOTS.mkdir(exist_ok=True)
        alice.page.screenshot(path=str(SCREENSHOTS / "call-security-code-phone.png"))
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_a_browser_and_the_python_peer_show_the_same_security_code(
    server: ParleyServer, make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    peer = run_peer(server, "call", me.username, "--seconds", "300")
    try:
        dialog = me.page.get_by_role("alertdialog", name="Incoming call")
        expect(dialog).to_be_visible(timeout=30_000)
        me.page.get_by_role("button", name="Accept").click()
        expect(status(me.page)).to_have_text("Connected")
        mine = shown_code(me)
        me.page.get_by_role("button", name="End call").click()
        out, _ = peer.communicate(timeout=60)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(10)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["security_code"] is not None, stats
    assert stats["security_code"]["text"] == mine, (stats, mine)
