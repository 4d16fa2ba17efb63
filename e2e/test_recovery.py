"""Calls and chat that survive dropped sockets and server restarts."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from harness.calls import connected_call, status, timeline, wait_media_flowing
from harness.people import User
from harness.servers import ParleyServer


def socket_open(page: Page) -> None:
    # A restart can put the page in a 15 s backoff (signaling.js) after a slow server start.
    page.wait_for_function("() => window.parley.signaling.state === 'open'", timeout=45_000)


@pytest.mark.parametrize("engines", [("chromium", "firefox")], ids="-".join)
def test_a_call_survives_its_signalling_socket_dropping(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = connected_call(make_user, engines)
    bob.page.evaluate("() => window.parley.signaling.ws.close(4001, 'network change')")
    wait_media_flowing(bob, video=True)  # media does not go through the server
    socket_open(bob.page)
    expect(status(bob.page)).to_have_text("Connected")
    bob.page.get_by_role("button", name="End call").click()
    expect(status(alice.page)).to_contain_text("Call ended")  # signalling resumed
    expect(timeline(alice, "Video call ·")).to_be_visible()


@pytest.mark.parametrize("engines", [("chromium", "chromium")], ids="-".join)
def test_a_call_survives_a_server_restart(
    server: ParleyServer, make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = connected_call(make_user, engines)
    server.restart()
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    socket_open(alice.page)
    socket_open(bob.page)
    expect(status(alice.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    for person in (alice, bob):
        expect(timeline(person, "Video call ·")).to_be_visible()


def test_no_chat_message_is_lost_or_doubled_across_two_server_restarts(
    server: ParleyServer, make_user: Callable[..., User]
) -> None:
    alice, bob = make_user("chromium"), make_user("firefox")
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    sent = 0
    for _restart in range(2):
        for _ in range(60):
            alice.page.evaluate(
                "([n]) => window.parley.chat.send(Number(location.hash.split('/').pop()), `m${n}`)",
                [sent],
            )
            sent += 1
        server.restart()
    while sent < 200:
        alice.page.evaluate(
            "([n]) => window.parley.chat.send(Number(location.hash.split('/').pop()), `m${n}`)",
            [sent],
        )
        sent += 1
    expected = [f"m{n}" for n in range(200)]

    def texts(page: Page) -> list[str]:
        return page.evaluate(
            """() => [...document.querySelectorAll('[aria-label="Messages"] li:not(.call-record)')]
                .map(li => li.firstChild.textContent)"""
        )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if texts(alice.page) == expected and texts(bob.page) == expected:
            break
        time.sleep(0.5)
    assert texts(alice.page) == expected
    assert texts(bob.page) == expected
    expect(alice.page.get_by_text("Sending")).to_have_count(0)
    stored = alice.page.evaluate(
        """async () => {
            const room = location.hash.split("/").pop();
            const body = await (await fetch(`/api/rooms/${room}/messages?limit=500`)).json();
            return body.messages.map((m) => m.text);
        }"""
    )
    assert stored == expected
