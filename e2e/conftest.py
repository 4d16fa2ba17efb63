"""e2e fixtures: a real Parley over HTTPS, real browsers with fake media, one context per person."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from harness.browsers import EngineUnavailable, close_surely, launch, new_context
from harness.servers import ROOT, ParleyServer, make_test_certs, parley_server

PASSWORD = "correct horse"
ECHO_PASSWORD = "e2e-echo-password"
_names = itertools.count()

expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("e2e")
    # Calls ring for the default 30 s, which a slow machine answers well inside (the unanswered
    # call has a short-ringing server of its own, in test_calls). A page reconnecting after a
    # server restart may wait out a 15 s backoff (signaling.js): the grace period outlasts it.
    with parley_server(
        root, make_test_certs(root / "certs"), ECHO_PASSWORD=ECHO_PASSWORD, CALL_GRACE_PERIOD="45"
    ) as running:
        yield running


@pytest.fixture(scope="session")
def echo_bot(
    server: ParleyServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """The echo-test bot as its own process, signed in to the e2e server like a browser."""
    env = dict(
        os.environ,
        PARLEY_URL=server.url,
        PARLEY_CA_FILE=str(server.certs / "ca.crt"),
        ECHO_PASSWORD=ECHO_PASSWORD,
        # Longer than any e2e test's call: a slow machine must not see the bot hang up mid-test.
        ECHO_MAX_SECONDS="300",
    )
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    with log.open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "backend.peer", "echo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 60  # importing aiortc alone takes seconds on a slow machine
    while time.monotonic() < deadline and "signed in as echo" not in log.read_text():
        time.sleep(0.2)
    assert "signed in as echo" in log.read_text(), log.read_text()[-2000:]
    yield bot
    bot.terminate()
    bot.wait(10)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browsers(playwright: Playwright) -> Iterator[Callable[[str], Browser]]:
    launched: dict[str, Browser] = {}

    def get(engine: str) -> Browser:
        # A browser killed for hanging on a close (close_surely) is launched again.
        if engine not in launched or not launched[engine].is_connected():
            try:
                launched[engine] = launch(playwright, engine)
            except EngineUnavailable as missing:
                if engine == "webkit":
                    # README, WebKit: what runs instead (e2e/test_webkit.py) and why calls cannot.
                    pytest.skip(f"{missing}; {NO_WEBKIT_CALLS}")
                pytest.skip(str(missing))
        return launched[engine]

    yield get
    for browser in launched.values():
        if browser.is_connected():
            close_surely(browser)


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
        headers={"Origin": server.url},
    )
    assert response.status == 201, response.text()
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return User(username, engine, context, page)


def open_room(alice: User, bob: User) -> None:
    """alice opens a chat with bob by name; bob opens it from his list. Both are on its page."""
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    expect(bob.page.get_by_role("textbox", name="Message")).to_be_visible()


@pytest.fixture
def make_user(
    server: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[..., User]]:
    contexts: list[BrowserContext] = []

    def make(engine: str = "chromium", sign_up: bool = True, **context_args: object) -> User:
        username = f"{engine[:2]}{next(_names)}x{secrets.randbelow(1000)}"
        if sign_up:
            user = new_person(browsers(engine), engine, server, username, **context_args)
            contexts.append(user.context)
            return user
        context = new_context(browsers(engine), engine, base_url=server.url, **context_args)
        contexts.append(context)
        page = context.new_page()
        page.goto("/")
        return User(username, engine, context, page)

    yield make
    for context in contexts:
        close_surely(context)


ENGINE_PAIRS = [("chromium", "chromium"), ("firefox", "firefox"), ("chromium", "firefox")]
# WebKit (every iPhone browser) runs where Playwright's WebKit is installed; here it is reported as
# skipped with the reason.
WEBKIT_PAIR = ("webkit", "webkit")
NO_WEBKIT_CALLS = (
    "Debian's WebKitGTK is built without WebRTC (no RTCPeerConnection), so WebKit calls cannot "
    "run here; e2e/test_webkit.py covers WebKit's non-call paths"
)


@pytest.fixture(params=[*ENGINE_PAIRS, WEBKIT_PAIR], ids=lambda p: f"{p[0]}-{p[1]}")
def pair(request: pytest.FixtureRequest, make_user: Callable[..., User]) -> tuple[User, User]:
    """Two signed-in people in two browsers, each on the page of their shared room."""
    first, second = request.param
    alice, bob = make_user(first), make_user(second)
    open_room(alice, bob)
    return alice, bob


def room_id(page: Page) -> int:
    match = re.search(r"#/room/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
