"""The composer: nothing typed is lost, several lines, links, the Echo hint and toasts beside it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, Playwright, expect

from harness.browsers import device_args
from harness.people import SCREENSHOTS, User, open_room, room_id

ENGINES = ["chromium", "firefox"]
SEND = "([room, text]) => window.parley.chat.send(room, text)"  # the outbox, past the composer
BLOCKED = "Camera and microphone are blocked. Allow them in the site settings, then try again."


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def log(page: Page) -> Locator:
    return page.get_by_role("log", name="Messages")


def send_and_wait(alice: User, bob: User, text: str) -> None:
    """alice sends a short message; both see it (so anything sent before it has arrived too)."""
    composer(alice.page).fill(text)
    alice.page.get_by_role("button", name="Send").click()
    expect(log(bob.page).get_by_text(text)).to_be_visible()
    expect(log(alice.page).get_by_text(text)).to_be_visible()


def bubbles(page: Page) -> Locator:
    return log(page).get_by_role("listitem")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_long_paste_is_kept_whole_says_how_far_over_and_is_never_sent(
    make_user: Callable[..., User], engine: str
) -> None:
    alice, bob = make_user(engine), make_user(engine)
    open_room(alice, bob)
    pasted = ("The whole of a long message, every character of it. " * 100)[:5000]
    box = composer(alice.page)
    box.focus()
    alice.page.keyboard.insert_text(pasted)  # as a paste: through editing, where maxlength cuts
    expect(box).to_have_value(pasted)
    over = "1,000 over the limit (5,000 of 4,000 characters)"
    expect(alice.page.get_by_text(over)).to_be_visible()
    send = alice.page.get_by_role("button", name="Send")
    expect(send).to_have_accessible_description(over)
    send.click()
    why = "Not sent: 5,000 of 4,000 characters is too long. Remove 1,000 to send."
    expect(alice.page.get_by_text(why)).to_be_visible()
    expect(send).to_have_accessible_description(why)
    box.press("Enter")
    expect(box).to_have_value(pasted)
    # Nothing went: a short message sent after it is the only one either side has.
    box.fill("only this one")
    expect(send).to_have_accessible_description("")
    send_and_wait(alice, bob, "only this one")
    expect(bubbles(bob.page)).to_have_count(1)
    expect(bubbles(alice.page)).to_have_count(1)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_limit_counts_characters_as_the_server_does(
    make_user: Callable[..., User], engine: str
) -> None:
    alice, bob = make_user(engine), make_user(engine)
    open_room(alice, bob)
    faces = "😀" * 4000  # 4,000 characters, 8,000 UTF-16 units
    composer(alice.page).fill(faces + "😀")
    expect(alice.page.get_by_text("1 over the limit (4,001 of 4,000 characters)")).to_be_visible()
    composer(alice.page).fill(faces)
    expect(alice.page.get_by_text("0 characters left")).to_be_visible()
    alice.page.get_by_role("button", name="Send").click()
    expect(bubbles(bob.page)).to_have_count(1)
    assert bubbles(bob.page).first.evaluate("li => [...li.firstChild.textContent].length") == 4000


@pytest.mark.parametrize("engine", ENGINES)
def test_a_message_the_server_refuses_stays_with_a_reason_and_retry(
    make_user: Callable[..., User], engine: str
) -> None:
    alice, bob = make_user(engine), make_user(engine)
    open_room(alice, bob)
    page = alice.page
    # Past the composer's check, straight into the outbox: the server is the one to refuse it.
    page.evaluate(SEND, [room_id(page), "z" * 4213])
    refused = bubbles(page).filter(has_text="z" * 50)
    reason = "Not sent · This message is too long (4,213 of 4,000 characters)."
    expect(refused.get_by_text(reason)).to_be_visible()
    expect(refused.get_by_role("button", name="Retry")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"composer-refused-{engine}.png"))
    # Retry asks the server again; it still refuses, and the message is still there, once.
    refused.get_by_role("button", name="Retry").click()
    expect(refused.get_by_text(reason)).to_be_visible()
    expect(refused).to_have_count(1)
    page.reload()
    refused = bubbles(page).filter(has_text="z" * 50)
    expect(refused.get_by_text(reason)).to_be_visible()
    # Edit puts every character back in the composer, which says what to cut.
    refused.get_by_role("button", name="Edit").click()
    expect(refused).to_have_count(0)
    expect(composer(page)).to_have_value("z" * 4213)
    expect(page.get_by_text("213 over the limit")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"composer-over-limit-{engine}.png"))
    # Over HTTP (the socket is down) a refusal used to drop the message: now it stays too.
    page.evaluate("() => window.parley.signaling.close()")
    page.evaluate(SEND, [room_id(page), "y" * 4100])
    refused = bubbles(page).filter(has_text="y" * 50)
    expect(refused.get_by_text("(4,100 of 4,000 characters)")).to_be_visible(timeout=30_000)
    expect(refused.get_by_role("button", name="Retry")).to_be_visible()
    refused.get_by_role("button", name="Delete").click()
    expect(refused).to_have_count(0)
    expect(page.get_by_text("String should have")).to_have_count(0)
    expect(bubbles(bob.page)).to_have_count(0)


@pytest.mark.parametrize("engine", ENGINES)
def test_on_a_desktop_shift_enter_makes_a_new_line_and_enter_sends(
    make_user: Callable[..., User], playwright: Playwright, engine: str
) -> None:
    desktop = device_args(playwright, engine, None)
    alice, bob = make_user(engine, **desktop), make_user(engine, **desktop)
    open_room(alice, bob)
    box = composer(alice.page)
    one_line = box.bounding_box()
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    box.press("Shift+Enter")
    box.press_sequentially("third line")
    expect(box).to_have_value("first line\nsecond line\nthird line")
    grown = box.bounding_box()
    assert one_line and grown and grown["height"] > one_line["height"] * 1.8, (one_line, grown)
    box.press("Enter")
    expect(box).to_have_value("")
    received = bubbles(bob.page).filter(has_text="first line")
    expect(received).to_have_count(1)
    assert received.inner_text().startswith("first line\nsecond line\nthird line")


def test_on_a_phone_return_makes_a_new_line_and_send_sends(
    make_user: Callable[..., User], playwright: Playwright
) -> None:
    phone = device_args(playwright, "chromium", "Pixel 7")
    alice, bob = make_user("chromium", **phone), make_user("chromium", **phone)
    open_room(alice, bob)
    assert alice.page.evaluate("() => matchMedia('(pointer: coarse)').matches")
    box = composer(alice.page)
    box.press_sequentially("on my phone")
    box.press("Enter")
    box.press_sequentially("a second line")
    expect(box).to_have_value("on my phone\na second line")
    expect(box).to_have_attribute("enterkeyhint", "enter")
    alice.page.screenshot(path=str(SCREENSHOTS / "pixel-7-composer.png"))
    expect(bubbles(bob.page)).to_have_count(0)
    alice.page.get_by_role("button", name="Send").click()
    expect(bubbles(bob.page).filter(has_text="on my phone")).to_have_count(1)
    assert bubbles(bob.page).first.inner_text().startswith("on my phone\na second line")


@pytest.mark.parametrize("engine", ENGINES)
def test_links_are_clickable_and_markup_shows_as_text(
    make_user: Callable[..., User], engine: str
) -> None:
    alice, bob = make_user(engine), make_user(engine)
    open_room(alice, bob)
    text = (
        "see https://example.com/a_(b)?q=1&r=2. and <b>x</b> <img src=x> "
        "javascript:alert(1) ftp://example.com/f (http://example.org/p)"
    )
    composer(alice.page).fill(text)
    alice.page.get_by_role("button", name="Send").click()
    expect(bubbles(bob.page)).to_have_count(1)
    for page in (alice.page, bob.page):
        message = bubbles(page).first
        expect(message).to_contain_text("<b>x</b> <img src=x>")
        expect(message.locator("b, img")).to_have_count(0)
        links = message.get_by_role("link")
        expect(links).to_have_count(2)
        first = message.get_by_role("link", name="https://example.com/a_(b)?q=1&r=2")
        expect(first).to_have_attribute("href", "https://example.com/a_(b)?q=1&r=2")
        expect(first).to_have_attribute("target", "_blank")
        expect(first).to_have_attribute("rel", "noopener noreferrer")
        expect(message.get_by_role("link", name="http://example.org/p")).to_have_attribute(
            "href", "http://example.org/p"
        )


@pytest.mark.parametrize(
    ("device", "size"), [("Pixel 7", "phone"), (None, "desktop")], ids=["phone", "desktop"]
)
def test_a_toast_never_covers_the_composer(
    make_user: Callable[..., User], playwright: Playwright, device: str | None, size: str
) -> None:
    args = device_args(playwright, "chromium", device)
    alice, bob = make_user("chromium", **args), make_user("chromium", **args)
    open_room(alice, bob)
    page = alice.page
    composer(page).fill("a draft\nof three\nlines")
    toast = page.locator("#toast")
    # views/toast.js: the page's own notice, shown as it is after a failed call.
    page.evaluate(
        """(text) => {
            const toast = document.getElementById("toast");
            toast.textContent = text;
            toast.hidden = false;
        }""",
        BLOCKED,
    )
    expect(toast).to_be_visible()
    form = page.locator("form.composer")
    for _ in range(2):
        toast_box, form_box = toast.bounding_box(), form.bounding_box()
        assert toast_box and form_box
        assert toast_box["y"] + toast_box["height"] <= form_box["y"], (toast_box, form_box)
        page.screenshot(path=str(SCREENSHOTS / f"composer-toast-{size}.png"))
        # The composer grows by a line: the toast moves up with it.
        composer(page).press("End")
        composer(page).press("Shift+Enter")
        composer(page).press_sequentially("and a fourth")


def test_the_echo_room_explains_itself_in_one_line(
    echo_bot: subprocess.Popen[bytes], make_user: Callable[..., User], playwright: Playwright
) -> None:
    me = make_user("chromium", **device_args(playwright, "chromium", "Pixel 7"))
    me.page.get_by_role("link", name="Echo test").click()
    hint = me.page.get_by_text("Tap Video call to see and hear yourself.")
    expect(hint).to_be_visible()
    box = hint.bounding_box()
    assert box and box["height"] < 2 * 16 * 1.5, box  # one line
    me.page.screenshot(path=str(SCREENSHOTS / "pixel-7-echo-room.png"))
    other = make_user("chromium")
    me.page.get_by_role("button", name="Back").click()
    me.open_chat_with(other)
    expect(me.page.get_by_text("Tap Video call")).to_have_count(0)
