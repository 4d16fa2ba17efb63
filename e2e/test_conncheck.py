"""Check connection on the chat list: which paths a call could take, against a real coturn."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect

from backend.turnserver import LocalTurn
from harness.browsers import CHROMIUM_ARGS, SYSTEM_CHROMIUM, close_surely
from harness.people import PASSWORD, SCREENSHOTS, User, new_person, people_on
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.viewports import DESKTOP, phone

ENGINES = ["chromium", "firefox"]
# The browsers here do not trust the tests' local CA, so coturn's turns: listener fails its check
# for them; a browser that trusts it (as a phone does once ca.crt is installed) gets a TLS relay.
TRUSTING_CHROMIUM_ARGS = [*CHROMIUM_ARGS, "--ignore-certificate-errors"]


def tls_turn(root: Path) -> LocalTurn:
    """A coturn as `make run` starts it (backend/turnserver.py), with a TLS listener too."""
    certs = make_test_certs(root / "certs")
    return LocalTurn(
        root / "turn", secrets.token_urlsafe(24), tls=(certs / "server.crt", certs / "server.key")
    )


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTurn]:
    turn = tls_turn(tmp_path_factory.mktemp("coturn"))
    turn.start()
    yield turn
    turn.stop()


def turn_server(root: Path, turn: LocalTurn) -> Iterator[ParleyServer]:
    """Run Parley handing out `turn`'s URLs and credentials, as `make run` does."""
    certs = turn.tls[0].parent if turn.tls else make_test_certs(root / "certs")
    with parley_server(
        root,
        certs,
        TURN_URLS=",".join(turn.urls),
        TURN_SECRET=turn.secret,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def relayed(coturn: LocalTurn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from turn_server(tmp_path_factory.mktemp("conncheck"), coturn)


@pytest.fixture(scope="module")
def unanswered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """Parley configured for a coturn that is not running: nothing listens on its ports."""
    root = tmp_path_factory.mktemp("conncheck-down")
    yield from turn_server(root, tls_turn(root))


def person_on(
    server: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[..., User]]:
    with people_on(server, browsers, "cc") as make:
        yield make


@pytest.fixture
def on_relayed(
    relayed: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[..., User]]:
    yield from person_on(relayed, browsers)


@pytest.fixture
def on_unanswered(
    unanswered: ParleyServer, browsers: Callable[[str], Browser]
) -> Iterator[Callable[..., User]]:
    yield from person_on(unanswered, browsers)


def check_connection(page: Page) -> None:
    page.get_by_role("button", name="Check connection").click()
    # Every probe gives up after a few seconds, so the results always come.
    expect(page.get_by_role("list", name="Connection check results")).to_be_visible(timeout=30_000)


def verdict(page: Page) -> Locator:
    return page.get_by_role("status", name="Connection check")


def expect_paths(page: Page, direct: str, udp: str, tcp: str, tls: str) -> None:
    """Expect the four result lines, in order, each after its mark."""
    items = page.get_by_role("list", name="Connection check results").get_by_role("listitem")
    lines = [f"Direct: {direct}", f"Relay over UDP: {udp}", f"Relay over TCP: {tcp}"]
    lines.append(f"Relay over TLS: {tls}")
    expect(items).to_have_text([re.compile(re.escape(line) + "$") for line in lines])


@pytest.mark.parametrize("engine", ENGINES)
def test_the_check_finds_direct_paths_and_the_relay_over_udp_and_tcp(
    on_relayed: Callable[[str], User], engine: str
) -> None:
    page = on_relayed(engine).page
    check_connection(page)
    expect_paths(page, "works", "works", "works", "no answer")
    expect(verdict(page)).to_have_text(
        "Calls can connect: directly where possible, through the relay server otherwise."
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_with_coturn_down_the_check_says_calls_need_a_direct_path(
    on_unanswered: Callable[[str], User], engine: str
) -> None:
    page = on_unanswered(engine).page
    check_connection(page)
    expect(verdict(page)).to_have_text(
        "Calls work only when a direct path exists: the relay server did not answer."
    )
    expect_paths(page, "works", "no answer", "no answer", "no answer")


def test_without_turn_the_check_says_no_relay_is_set_up(make_user: Callable[..., User]) -> None:
    page = make_user("chromium").page
    check_connection(page)
    expect(verdict(page)).to_have_text(
        "Calls work only when a direct path exists: no relay server is set up."
    )
    expect_paths(page, "works", "not set up", "not set up", "not set up")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_screenshots_of_the_check(
    relayed: ParleyServer, browsers: Callable[[str], Browser], size: str
) -> None:
    options = phone("chromium") if size == "phone" else DESKTOP
    user = new_person(
        browsers("chromium"), "chromium", relayed, f"shot{secrets.token_hex(3)}", **options
    )
    try:
        for _ in range(3):  # chats above the check: its results must not squeeze them
            pal = f"pal{secrets.token_hex(3)}"
            registered = httpx.post(
                f"{relayed.url}/api/register",
                json={"username": pal, "password": PASSWORD},
                headers={"Origin": relayed.url},
                verify=relayed.ssl_context(),
                timeout=60,  # password hashing on a slow machine
            )
            assert registered.status_code == 201, registered.text
            user.page.get_by_role("textbox", name="New chat").fill(pal)
            user.page.get_by_role("button", name="Open chat").click()
            expect(user.page.get_by_role("textbox", name="Message")).to_be_visible()
            user.page.goto("/")
        check_connection(user.page)
        chats = user.page.locator(".rooms")
        expect(chats.locator("a.room-row")).to_have_count(3)
        # The pane scrolls as a whole; the list of chats itself is never cut to a scrolling slit.
        clipped = chats.evaluate("list => list.scrollHeight - list.clientHeight")
        assert clipped <= 1, f"the chat list hides {clipped} px of its chats"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        user.page.get_by_role("list", name="Connection check results").scroll_into_view_if_needed()
        user.page.screenshot(path=str(SCREENSHOTS / f"conncheck-{size}.png"))
    finally:
        close_surely(user.context)


def test_a_browser_that_trusts_the_certificate_gets_a_relay_over_tls(
    relayed: ParleyServer, playwright: Playwright
) -> None:
    kwargs: dict[str, Any] = {"args": TRUSTING_CHROMIUM_ARGS}
    if SYSTEM_CHROMIUM.exists():
        kwargs["executable_path"] = str(SYSTEM_CHROMIUM)
    browser = playwright.chromium.launch(**kwargs)
    try:
        user = new_person(browser, "chromium", relayed, f"tls{secrets.token_hex(3)}")
        check_connection(user.page)
        expect_paths(user.page, "works", "works", "works", "works")
    finally:
        close_surely(browser)
