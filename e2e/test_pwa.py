"""The installable app: manifest, service worker, offline shell, push, phone layout."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from backend.web import build_shell
from harness.browsers import CHROMIUM_ARGS, SYSTEM_CHROMIUM, close_surely
from harness.calls import status, wait_media_flowing
from harness.people import SCREENSHOTS, User
from harness.servers import ParleyServer

PWA = Path(__file__).resolve().parent.parent / "pwa"


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_manifest_is_complete_and_its_icons_are_real_pngs_of_their_sizes() -> None:
    manifest = json.loads((PWA / "manifest.webmanifest").read_text())
    for key in (
        "name",
        "short_name",
        "description",
        "start_url",
        "scope",
        "theme_color",
        "background_color",
    ):
        assert manifest[key], key
    assert manifest["display"] == "standalone"
    purposes = {icon["purpose"] for icon in manifest["icons"]}
    assert purposes == {"any", "maskable"}
    for icon in manifest["icons"]:
        width, height = (int(n) for n in icon["sizes"].split("x"))
        assert png_size(PWA / icon["src"].lstrip("/")) == (width, height)
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    assert png_size(PWA / "icons/apple-touch-icon-180.png") == (180, 180)
    assert png_size(PWA / "icons/badge-96.png") == (96, 96)


def test_the_service_worker_caches_every_app_file_and_nothing_else() -> None:
    shell = build_shell(PWA)  # what the server fills into sw.js
    assert shell is not None
    listed = set(shell.urls)
    for asset in listed - {"/"}:
        assert (PWA / asset.lstrip("/")).is_file(), asset
    modules = {f"/{p.relative_to(PWA)}" for p in (PWA / "js").rglob("*.js")}
    assert modules <= listed, modules - listed
    assert not any(a.startswith("/api") or a == "/ws" for a in listed)


@pytest.fixture
def installed(
    playwright: Playwright, server: ParleyServer, tmp_path: Path
) -> Iterator[BrowserContext]:
    """A persistent Chromium profile (installability needs one), trusting nothing but told to."""
    kwargs = {"executable_path": str(SYSTEM_CHROMIUM)} if SYSTEM_CHROMIUM.exists() else {}
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        headless=True,
        args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],  # else no SW behind the test CA
        ignore_https_errors=True,
        base_url=server.url,
        **kwargs,  # type: ignore[arg-type]
    )
    yield context
    close_surely(context)


def ready_page(context: BrowserContext) -> Page:
    page = context.pages[0] if context.pages else context.new_page()
    page.goto("/")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    return page


def test_chromium_finds_parley_installable_and_it_reloads_offline(
    installed: BrowserContext,
) -> None:
    page = ready_page(installed)
    cdp = installed.new_cdp_session(page)
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    cached = page.evaluate(
        """async () => {
            const urls = [];
            for (const key of await caches.keys()) {
                for (const request of await (await caches.open(key)).keys()) urls.push(request.url);
            }
            return urls;
        }"""
    )
    assert any(url.endswith("/js/call.js") for url in cached)
    assert not any("/api/" in url for url in cached)
    installed.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name="Parley")).to_be_visible()
    expect(page.locator("#banner")).to_contain_text("offline")
    installed.set_offline(False)


def test_a_push_shows_the_incoming_call_and_a_cancel_push_closes_it(
    installed: BrowserContext, server: ParleyServer
) -> None:
    installed.grant_permissions(["notifications"], origin=server.url)
    page = ready_page(installed)
    cdp = installed.new_cdp_session(page)
    registrations: list[dict] = []  # type: ignore[type-arg]
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    until = time.monotonic() + 60  # a condition, bounded only so that a broken worker fails
    while not registrations and time.monotonic() < until:
        page.wait_for_timeout(100)
    assert registrations, "no service worker registration reported"
    registration = registrations[0]["registrationId"]
    call = "0f8fad5b-d9cb-469f-a165-70867728950e"
    offer = {
        "type": "call_offer",
        "call_id": call,
        "room_id": 3,
        "from": {"id": 2, "username": "bob"},
        "media": "video",
    }

    def deliver(payload: dict) -> None:  # type: ignore[type-arg]
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": server.url, "registrationId": registration, "data": json.dumps(payload)},
        )

    def shown() -> list[dict]:  # type: ignore[type-arg]
        return page.evaluate(
            """async () => (await (await navigator.serviceWorker.ready).getNotifications())
                .map(n => ({title: n.title, tag: n.tag, actions: n.actions.map(a => a.title)}))"""
        )

    # None yet; and asked before the push, not after. Chromium's first getNotifications() of a
    # session syncs its notification store with what is on screen, and a notification shown as
    # that runs can drop out of the store, still shown: the push handler had shown it (its
    # promise resolved) and the list stayed empty (here 2 runs in 12 under CPU load; 0 in 14
    # with this question first; CI twice, "registration active, permission granted").
    assert shown() == []
    deliver(offer)
    until = time.monotonic() + 60
    while not shown() and time.monotonic() < until:
        page.wait_for_timeout(250)
    # When it fails: what the worker and DevTools said, to tell why.
    assert shown() == [
        {"title": "bob is calling (video)", "tag": call, "actions": ["Accept", "Decline"]}
    ], (
        registrations,
        page.evaluate(
            """async () => {
                const r = await navigator.serviceWorker.getRegistration();
                return {permission: Notification.permission,
                        active: r && r.active && r.active.state,
                        waiting: Boolean(r && r.waiting), installing: Boolean(r && r.installing)};
            }"""
        ),
    )
    deliver({"type": "call_cancelled", "call_id": call})
    until = time.monotonic() + 60
    while shown() and time.monotonic() < until:
        page.wait_for_timeout(250)
    assert shown() == []


PHONES = ["Pixel 7", "iPhone 15"]


@pytest.mark.parametrize("device", PHONES)
def test_phone_layout_fits_and_a_touch_call_has_big_controls(
    make_user: Callable[..., User], playwright: Playwright, device: str
) -> None:
    phone = dict(playwright.devices[device])
    phone.pop("default_browser_type", None)
    alice = make_user("chromium", **phone)
    bob = make_user("chromium", **phone)
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).tap()
    SCREENSHOTS.mkdir(exist_ok=True)
    slug = device.replace(" ", "-").lower()
    for page in (alice.page, bob.page):
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    alice.page.screenshot(path=SCREENSHOTS / f"{slug}-room.png")
    alice.page.get_by_role("button", name="Video call").tap()
    expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_visible()
    bob.page.screenshot(path=SCREENSHOTS / f"{slug}-incoming.png")
    bob.page.get_by_role("button", name="Accept").tap()
    expect(status(alice.page)).to_have_text("Connected")
    wait_media_flowing(bob, video=True)
    for name in ("Mute", "Camera off", "End call"):
        button = alice.page.get_by_role("button", name=name)
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, (name, box)
    assert alice.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    alice.page.screenshot(path=SCREENSHOTS / f"{slug}-call.png")
    alice.page.set_viewport_size(
        {"width": phone["viewport"]["height"], "height": phone["viewport"]["width"]}
    )
    for name in ("Mute", "End call"):
        expect(alice.page.get_by_role("button", name=name)).to_be_in_viewport()
    alice.page.screenshot(path=SCREENSHOTS / f"{slug}-call-landscape.png")
    alice.page.get_by_role("button", name="End call").tap()
    expect(status(bob.page)).to_contain_text("Call ended")


def test_nothing_scrolls_sideways_at_320_pixels(make_user: Callable[..., User]) -> None:
    alice = make_user("chromium", viewport={"width": 320, "height": 640})
    bob = make_user("chromium")
    alice.open_chat_with(bob)
    alice.page.get_by_role("textbox", name="Message").fill("a-very-long-word-" * 20)
    alice.page.get_by_role("button", name="Send").click()
    expect(alice.page.get_by_text("Delivered")).to_be_visible()
    assert alice.page.evaluate("() => document.documentElement.scrollWidth <= 320")
    alice.page.get_by_role("button", name="Back").click()
    assert alice.page.evaluate("() => document.documentElement.scrollWidth <= 320")
