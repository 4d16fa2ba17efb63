"""People in real browsers: a context of their own, an account, the signed-in page, a room."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from playwright.sync_api import Browser, BrowserContext, Page, expect

from harness.browsers import OWN_CONNECTION, close_surely, new_context
from harness.servers import ROOT, ParleyServer

PASSWORD = "correct horse"
SCREENSHOTS = ROOT / "e2e" / "screenshots"

ENGINE_PAIRS = [("chromium", "chromium"), ("firefox", "firefox"), ("chromium", "firefox")]
# WebKit (every iPhone browser) runs where Playwright's WebKit is installed; here it is reported as
# skipped with the reason.
WEBKIT_PAIR = ("webkit", "webkit")
NO_WEBKIT_CALLS = (
    "Debian's WebKitGTK is built without WebRTC (no RTCPeerConnection), so WebKit calls cannot "
    "run here; e2e/test_webkit.py covers WebKit's non-call paths"
)


@dataclass
class User:
    """One person: a browser context of their own, signed in, on Parley's page."""

    username: str
    engine: str
    context: BrowserContext
    page: Page

    def open_chat_with(self, other: User) -> None:
        self.page.get_by_role("textbox", name="New chat").fill(other.username)
        self.page.get_by_role("button", name="Open chat").click()
        expect(self.page.get_by_role("textbox", name="Message")).to_be_visible()

    def stats(self) -> dict | None:  # type: ignore[type-arg]
        return self.page.evaluate("() => window.parley.calls && window.parley.calls.stats()")


def new_person(
    browser: Browser, engine: str, server: ParleyServer, username: str, **context_args: object
) -> User:
    """A new person on `server`: a browser context of their own, an account, the signed-in page."""
    context = new_context(browser, engine, base_url=server.url, **context_args)
    response = context.request.post(
        "/api/register",
        data={"username": username, "password": PASSWORD},
        headers={"Origin": server.url, **OWN_CONNECTION},
    )
    assert response.status == 201, response.text()
    page = context.new_page()
    page.goto("/")
    # The first page of a cold browser loads every module while the other lane loads the machine:
    # CI once took over 15 s to draw it (the page's status and an empty main, then nothing).
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=60_000)
    return User(username, engine, context, page)


@contextmanager
def people_on(
    server: ParleyServer, browsers: Callable[[str], Browser], prefix: str
) -> Iterator[Callable[[str], User]]:
    """Make new people on `server` (not the suite's), each in a context closed at the end."""
    contexts: list[BrowserContext] = []

    def make(engine: str) -> User:
        username = f"{prefix}{engine[:2]}{secrets.token_hex(3)}"
        user = new_person(browsers(engine), engine, server, username)
        contexts.append(user.context)
        return user

    try:
        yield make
    finally:
        for context in contexts:
            close_surely(context)


def open_room(alice: User, bob: User) -> None:
    """alice opens a chat with bob by name; bob opens it from his list. Both are on its page."""
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    expect(bob.page.get_by_role("textbox", name="Message")).to_be_visible()


def room_id(page: Page) -> int:
    """Return the id of the room the page shows."""
    match = re.search(r"#/room/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))
