"""e2e fixtures: a real Parley over HTTPS, real browsers with fake media, one context per person."""

from __future__ import annotations

import itertools
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, expect, sync_playwright

from backend.turnserver import LocalTurn
from harness.browsers import EngineUnavailable, close_surely, launch, new_context
from harness.calls import RELAY_TTL, RING
from harness.echobot import echo_bot as echo_bot_process
from harness.people import (
    ENGINE_PAIRS,
    NO_WEBKIT_CALLS,
    WEBKIT_PAIR,
    User,
    new_person,
    open_room,
    people_on,
)
from harness.servers import ParleyServer, make_test_certs, parley_server

ECHO_PASSWORD = "e2e-echo-password"
_names = itertools.count()

expect.set_options(timeout=15_000)
HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), every browser test runs on one worker, one at a time.

    A call's browsers encode and decode video on both of CI's two cores; two calls at once would
    make each other's media late. The server tests run beside them on the other worker.
    """
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browsers"))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("e2e")
    # Calls ring for the default 30 s, which a slow machine answers well inside (the unanswered
    # call has a short-ringing server of its own, ringing_server). A page reconnecting after a
    # server restart may wait out a 15 s backoff (signaling.js): the grace period outlasts it.
    with parley_server(
        root, make_test_certs(root / "certs"), ECHO_PASSWORD=ECHO_PASSWORD, CALL_GRACE_PERIOD="45"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ringing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server that stops ringing after RING seconds, for the calls nobody answers."""
    root = tmp_path_factory.mktemp("ringing")
    with parley_server(
        root, make_test_certs(root / "certs"), CALL_RING_TIMEOUT=str(RING)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTurn]:
    """A coturn on loopback for the module (TURN REST credentials, UDP and TCP, no TLS)."""
    turn = LocalTurn(tmp_path_factory.mktemp("coturn"), secret=secrets.token_urlsafe(24))
    turn.start()
    yield turn
    turn.stop()


@pytest.fixture(scope="module")
def relay_server(
    coturn: LocalTurn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """A server whose calls may only go through `coturn`, with credentials of RELAY_TTL seconds."""
    root = tmp_path_factory.mktemp("relay")
    with parley_server(
        root,
        make_test_certs(root / "certs"),
        TURN_URLS=coturn.urls[0],
        TURN_SECRET=coturn.secret,
        TURN_TTL=str(RELAY_TTL),
        ICE_TRANSPORT_POLICY="relay",  # the test-only setting: no host or STUN paths
    ) as server:
        yield server


@pytest.fixture
def relay_user(
    relay_server: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[[str], User]]:
    """Return a maker of people on the relay-only server."""
    with people_on(relay_server, browsers, "relay") as make:
        yield make


@pytest.fixture(scope="session")
def echo_bot(
    server: ParleyServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """The echo-test bot as its own process, signed in to the e2e server like a browser."""
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    # Longer than any e2e test's call: a slow machine must not see the bot hang up mid-test.
    with echo_bot_process(server, ECHO_PASSWORD, log, max_seconds=300) as bot:
        yield bot


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


@pytest.fixture(params=[*ENGINE_PAIRS, WEBKIT_PAIR], ids=lambda p: f"{p[0]}-{p[1]}")
def pair(request: pytest.FixtureRequest, make_user: Callable[..., User]) -> tuple[User, User]:
    """Two signed-in people in two browsers, each on the page of their shared room."""
    first, second = request.param
    alice, bob = make_user(first), make_user(second)
    open_room(alice, bob)
    return alice, bob
