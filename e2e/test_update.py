"""An open (installed) Parley gets every deploy: it offers Update, and then runs the new code.

Each test serves a copy of pwa/ and changes a file of it on disk, then restarts that server on the
same port (the same origin), as a deploy would.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from harness.browsers import CHROMIUM_ARGS, SYSTEM_CHROMIUM, close_surely, device_args, new_context
from harness.calls import place_call, status
from harness.people import SCREENSHOTS, User, new_person, open_room
from harness.servers import ROOT, ParleyServer, make_test_certs, parley_server

ENGINES = ["chromium", "firefox"]
MAIN = Path("js") / "main.js"
# Appended to main.js by the "deploy": the page runs the new code once this is set.
NEW_CODE = '\nwindow.parleyBuild = "second";\n'
_names = itertools.count()


@pytest.fixture(scope="module")
def sw_chromium(playwright: Playwright) -> Iterator[Browser]:
    """Chromium that registers service workers behind the test CA.

    Chromium registers none behind an untrusted certificate without --ignore-certificate-errors;
    Firefox does with ignore_https_errors alone, so the suite's own Firefox serves.
    """
    kwargs = {"executable_path": str(SYSTEM_CHROMIUM)} if SYSTEM_CHROMIUM.exists() else {}
    browser = playwright.chromium.launch(
        args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
        **kwargs,  # type: ignore[arg-type]
    )
    yield browser
    close_surely(browser)


@pytest.fixture
def sw_browsers(
    sw_chromium: Browser, browsers: Callable[[str], Browser]
) -> Callable[[str], Browser]:
    """Return the browser of an engine that can run Parley's service worker here."""
    return lambda engine: sw_chromium if engine == "chromium" else browsers(engine)


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "pwa", tmp_path / "pwa"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def deploy(tmp_path: Path, certs: Path, app_copy: Path) -> Iterator[ParleyServer]:
    """A Parley serving the copy of pwa/; restart() it to deploy what changed on disk."""
    with parley_server(tmp_path / "server", certs, PWA_DIR=str(app_copy)) as running:
        yield running


@pytest.fixture
def person(
    deploy: ParleyServer, sw_browsers: Callable[[str], Browser], playwright: Playwright
) -> Iterator[Callable[[str], User]]:
    """Sign up someone on `deploy` with a phone's screen; their page is the worker's."""
    contexts: list[BrowserContext] = []

    def make(engine: str) -> User:
        phone = device_args(playwright, engine, "Pixel 7")
        user = new_person(sw_browsers(engine), engine, deploy, f"up{next(_names)}", **phone)
        contexts.append(user.context)
        controlled(user.page)
        return user

    yield make
    for context in contexts:
        close_surely(context)


def controlled(page: Page) -> None:
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)


def runs_new_code(page: Page) -> bool:
    return bool(page.evaluate("() => window.parleyBuild === 'second'"))


def change_a_javascript_file(app_copy: Path) -> None:
    with (app_copy / MAIN).open("a") as file:
        file.write(NEW_CODE)


def update_button(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("button", name="Update")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_open_page_offers_the_new_version_and_runs_it_after_update(
    person: Callable[[str], User], deploy: ParleyServer, app_copy: Path, engine: str
) -> None:
    alice = person(engine)
    page = alice.page
    change_a_javascript_file(app_copy)
    deploy.restart()
    expect(update_button(page)).to_be_visible(timeout=60_000)
    expect(page.locator("#update")).to_contain_text("A new version of Parley is ready.")
    assert not runs_new_code(page)  # nothing changes under the person's feet before the tap
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"update-banner-{engine}.png")
    update_button(page).click()
    page.wait_for_function("() => window.parleyBuild === 'second'", timeout=30_000)
    expect(update_button(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # The new worker serves it, from its own cache only: the old one was deleted.
    caches = page.evaluate("async () => (await caches.keys()).filter(k => k.startsWith('parley-'))")
    assert len(caches) == 1, caches


def test_during_a_call_the_update_waits_until_the_call_ends(
    person: Callable[[str], User], deploy: ParleyServer, app_copy: Path
) -> None:
    alice, bob = person("chromium"), person("chromium")
    open_room(alice, bob)
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    change_a_javascript_file(app_copy)
    deploy.restart()
    # The new version is installed and waiting, the call carries on, and nothing is offered.
    alice.page.wait_for_function(
        "async () => Boolean((await navigator.serviceWorker.getRegistration()).waiting)",
        timeout=60_000,
    )
    alice.page.wait_for_function("() => window.parley.signaling.state === 'open'", timeout=30_000)
    expect(status(alice.page)).to_have_text("Connected")
    expect(update_button(alice.page)).to_have_count(0)
    alice.page.get_by_role("button", name="End call").click()
    expect(update_button(alice.page)).to_be_visible()
    update_button(alice.page).click()
    alice.page.wait_for_function("() => window.parleyBuild === 'second'", timeout=30_000)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_page_too_old_for_the_server_offers_update_instead_of_talking_on(
    person: Callable[[str], User], deploy: ParleyServer, app_copy: Path, engine: str
) -> None:
    wire_js = app_copy / "js" / "wire.js"
    current = wire_js.read_text()
    # An old client: the deploy of the day speaks a protocol one version older than the server's.
    old = current.replace(
        "export const PROTOCOL_VERSION = ", "export const PROTOCOL_VERSION = -1 + "
    )
    assert old != current
    wire_js.write_text(old)
    deploy.restart()
    alice = person(engine)
    page = alice.page
    expect(update_button(page)).to_be_visible()
    expect(page.locator("#update")).to_contain_text("can no longer connect")
    assert page.evaluate("() => window.parley.signaling.state") == "closed"
    wire_js.write_text(current)  # the current client is deployed
    change_a_javascript_file(app_copy)
    deploy.restart()
    update_button(page).click()
    page.wait_for_function("() => window.parleyBuild === 'second'", timeout=30_000)
    # Signed in again on the reloaded page, the socket open and the offer gone.
    page.wait_for_function(
        "() => window.parley.signaling && window.parley.signaling.state === 'open'", timeout=30_000
    )
    expect(update_button(page)).to_have_count(0)


@pytest.mark.parametrize("trigger", ["foreground", "hourly"])
def test_a_page_without_a_socket_looks_for_updates_in_the_foreground_and_hourly(
    sw_browsers: Callable[[str], Browser], deploy: ParleyServer, app_copy: Path, trigger: str
) -> None:
    """Signed out there is no socket to reconnect after the restart: only these checks find it."""
    context = new_context(sw_browsers("chromium"), "chromium", base_url=deploy.url)
    try:
        page = context.new_page()
        if trigger == "hourly":
            page.clock.install()
        page.goto("/")
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", polling=200)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        change_a_javascript_file(app_copy)
        deploy.restart()
        if trigger == "foreground":
            page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
        else:
            page.clock.fast_forward("01:00:01")
        expect(update_button(page)).to_be_visible(timeout=30_000)
    finally:
        close_surely(context)


@pytest.mark.parametrize("trigger", ["visibilitychange", "connection change"])
def test_the_socket_reconnects_at_once_in_the_foreground_or_on_a_new_network(
    person: Callable[[str], User], deploy: ParleyServer, trigger: str
) -> None:
    page = person("chromium").page
    deploy.stop()
    page.wait_for_function("() => window.parley.signaling.state === 'reconnecting'")
    event = (
        "document.dispatchEvent(new Event('visibilitychange'))"
        if trigger == "visibilitychange"
        else "navigator.connection.dispatchEvent(new Event('change'))"
    )
    # One synchronous script: only the event can have opened the new socket, not the backoff.
    opened = page.evaluate(
        f"""() => {{
            const signaling = window.parley.signaling;
            const before = signaling.ws;
            {event};
            return signaling.ws !== null && signaling.ws !== before;
        }}"""
    )
    assert opened
    deploy.start()
    page.wait_for_function("() => window.parley.signaling.state === 'open'", timeout=30_000)
