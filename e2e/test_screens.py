"""The screens people expect: the chat list, two panes on a desktop, notices, CSP, screenshots."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from harness.browsers import close_surely, new_context
from harness.calls import place_call, status, wait_media_flowing
from harness.people import User, new_person
from harness.servers import ROOT, ParleyServer, make_test_certs, parley_server
from harness.viewports import DESKTOP, PHONE

# The README's pictures: `README_SCREENSHOTS=docs/screenshots` refreshes them; an ordinary run
# writes beside the other screenshots and leaves the committed ones alone.
DOCS_SCREENSHOTS = ROOT / os.environ.get("README_SCREENSHOTS", "e2e/screenshots/readme")
LONG = "A long message that cannot fit on one line of the chat list: its preview ends in …"

# Every CSP violation the page sees, as the spec's event reports it (Firefox's console messages
# about CSP do not reach Playwright, the event does in both engines).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def box(locator: Locator) -> dict[str, float]:
    """The element's box, once it has one (a message just sent is redrawn when it is stored)."""
    expect(locator).to_be_visible()
    deadline = time.monotonic() + 15
    while (found := locator.bounding_box()) is None:
        assert time.monotonic() < deadline, f"{locator} has no box"
        time.sleep(0.1)
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def send(user: User, text: str) -> None:
    user.page.get_by_role("textbox", name="Message").fill(text)
    user.page.get_by_role("button", name="Send").click()
    expect(user.page.get_by_role("log", name="Messages").get_by_text(text)).to_be_visible()


def style(locator: Locator, prop: str) -> str:
    return str(locator.evaluate(f"(el) => getComputedStyle(el).{prop}"))


def test_a_chat_list_row_shows_name_preview_time_and_unread_apart_at_a_phone_viewport(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("chromium", **PHONE)
    alice.open_chat_with(bob)
    send(alice, LONG)
    send(alice, f"{LONG}, twice")
    row = bob.page.get_by_role("link", name=alice.username)
    name, preview = row.locator(".name"), row.locator(".last")
    when, unread = row.locator("time"), row.get_by_label("2 unread")
    for part in (name, preview, when, unread):
        expect(part).to_be_visible()
    expect(name).to_have_text(alice.username)
    expect(preview).to_have_text(f"{LONG}, twice")
    expect(when).to_have_text(re.compile(r"\d"))
    boxes = [box(part) for part in (name, preview, when, unread)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not overlap(a, b), boxes
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"] + 1  # the preview under the name
    assert boxes[2]["x"] >= boxes[0]["x"] + boxes[0]["width"]  # the time right of the name
    assert style(preview, "textOverflow") == "ellipsis"
    assert preview.evaluate("(el) => el.scrollWidth > el.clientWidth")
    assert box(row)["x"] + box(row)["width"] <= 390
    expect(row).to_have_accessible_description(re.compile(r"twice.*2 unread"))


def test_the_list_says_who_is_signed_in_and_settings_open_the_device_choice(
    make_user: Callable[..., User],
) -> None:
    me = make_user("chromium", **PHONE)
    expect(me.page.get_by_text(f"Signed in as {me.username}")).to_be_visible()
    entry = me.page.get_by_role("button", name="Microphone and camera")
    expect(entry).to_be_visible()
    expect(me.page.get_by_role("heading", name="Settings")).to_be_visible()
    expect(entry).to_have_attribute("aria-expanded", "false")
    expect(me.page.get_by_role("combobox", name="Camera")).to_be_hidden()
    entry.click()
    expect(entry).to_have_attribute("aria-expanded", "true")
    expect(me.page.get_by_role("combobox", name="Microphone")).to_be_visible()
    camera = me.page.get_by_role("combobox", name="Camera")
    expect(camera).to_be_visible()
    expect(camera.locator("option")).not_to_have_count(1)  # default + the fake camera


def test_a_desktop_shows_the_list_beside_the_open_chat_and_a_phone_one_at_a_time(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium", **DESKTOP), make_user("chromium")
    alice.open_chat_with(bob)
    send(alice, LONG * 3)
    page = alice.page
    chats = page.get_by_role("list", name="Chats")
    messages = page.get_by_role("log", name="Messages")
    expect(chats).to_be_visible()
    expect(messages).to_be_visible()
    expect(chats.get_by_role("link", name=bob.username)).to_have_attribute("aria-current", "page")
    left, right = box(chats), box(messages)
    assert not overlap(left, right)
    assert left["x"] + left["width"] <= right["x"]
    expect(page.get_by_role("button", name="Back")).to_be_hidden()
    bubble = messages.get_by_role("listitem").filter(has_text=LONG)
    width = box(bubble)["width"]
    em = float(style(bubble, "fontSize").removesuffix("px"))
    assert width <= 40 * em, (width, em)
    assert width < right["width"] * 0.8

    # Another chat opens from the list beside it; the list stays.
    carol = make_user("chromium")
    page.get_by_role("textbox", name="New chat").fill(carol.username)
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("heading", name=carol.username)).to_be_visible()
    expect(chats.get_by_role("link", name=bob.username)).to_be_visible()

    # A phone-sized window shows one screen at a time, with Back.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(chats).to_be_hidden()
    expect(messages).to_be_visible()
    page.get_by_role("button", name="Back").click()
    expect(chats).to_be_visible()
    expect(messages).to_be_hidden()


def assert_inset_notice(notice: Locator, width: int) -> None:
    expect(notice).to_be_visible()
    for side in ("Left", "Right", "Top", "Bottom"):
        assert float(style(notice, f"padding{side}").removesuffix("px")) > 0, side
    found = box(notice)
    assert found["x"] >= 8 and found["x"] + found["width"] <= width - 8, found


def test_error_notices_are_padded_and_never_touch_the_screen_edge(
    make_user: Callable[..., User],
) -> None:
    me = make_user("chromium", **PHONE)
    me.page.get_by_role("textbox", name="New chat").fill("nobody-here")
    me.page.get_by_role("button", name="Open chat").click()
    assert_inset_notice(me.page.get_by_role("alert").filter(has_text="no user called"), 390)
    me.page.goto("/#/room/987654321")  # not a room of theirs: the chat says why
    notice = me.page.get_by_role("alert").filter(has_text="room")
    assert_inset_notice(notice, 390)


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_no_screen_breaks_the_content_security_policy(
    make_user: Callable[..., User], engine: str
) -> None:
    stranger = make_user(engine, sign_up=False)
    response = stranger.page.goto("/")
    assert response
    policy = response.headers["content-security-policy"]
    assert "style-src 'self'" in policy and "unsafe-inline" not in policy
    alice, bob = make_user(engine), make_user(engine)
    for person in (stranger, alice, bob):
        person.page.add_init_script(WATCH_CSP)
        person.page.reload()
    expect(stranger.page.get_by_role("button", name="Sign in")).to_be_visible()
    alice.open_chat_with(bob)
    send(alice, "hello")
    bob.page.get_by_role("link", name=alice.username).click()
    bob.page.get_by_role("button", name="Microphone and camera").click()
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    for person in (stranger, alice, bob):
        assert person.page.evaluate("() => window.__csp") == [], person.username


# --- screenshots for the README ----------------------------------------------------------------


@pytest.fixture
def screens_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server of its own, so the people in the README's screenshots have plain names."""
    root = tmp_path_factory.mktemp("screens")
    with parley_server(root, make_test_certs(root / "certs")) as running:
        yield running


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_screenshots_of_the_main_screens(
    screens_server: ParleyServer, browsers: Callable[[str], Browser], size: str
) -> None:
    browser = browsers("chromium")
    options = PHONE if size == "phone" else DESKTOP
    contexts: list[BrowserContext] = []

    def person(name: str) -> User:
        user = new_person(browser, "chromium", screens_server, name, **options)
        contexts.append(user.context)
        return user

    def shoot(page: Page, screen: str) -> None:
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = DOCS_SCREENSHOTS / f"{size}-{screen}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 0

    try:
        stranger = new_context(browser, "chromium", base_url=screens_server.url, **options)
        contexts.append(stranger)
        signed_out = stranger.new_page()
        signed_out.goto("/")
        expect(signed_out.get_by_role("button", name="Sign in")).to_be_visible()
        shoot(signed_out, "sign-in")

        alice, bob, carol = person("alice"), person("bob"), person("carol")
        alice.open_chat_with(bob)
        send(alice, "Hi Bob! Are we still on for six?")
        carol.open_chat_with(bob)
        send(carol, "The photos from Saturday are up: have a look, the lake ones are lovely!")
        chats = bob.page.get_by_role("list", name="Chats")
        bob.page.reload()  # the list as the server counts it (live counting is chat.js's own test)
        for name in ("alice", "carol"):
            expect(chats.get_by_role("link", name=name).get_by_label("1 unread")).to_be_visible()
        shoot(bob.page, "chat-list")

        chats.get_by_role("link", name="alice").click()
        send(bob, "Yes! I'll call you in a minute.")
        send(alice, "Great, talk soon.")
        log = bob.page.get_by_role("log", name="Messages")
        expect(log.get_by_text("talk soon")).to_be_visible()
        shoot(bob.page, "chat")

        place_call(alice, bob)
        shoot(bob.page, "incoming-call")
        bob.page.get_by_role("button", name="Accept").click()
        expect(status(alice.page)).to_have_text("Connected")
        wait_media_flowing(alice, video=True)
        shoot(alice.page, "call")
        alice.page.get_by_role("button", name="End call").click()
    finally:
        for context in contexts:
            close_surely(context)
