"""Accounts and chat in real browsers: what a person sees."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Playwright, expect

from harness.browsers import device_args
from harness.people import ENGINE_PAIRS, PASSWORD, User


def test_sign_up_in_the_page_then_sign_out_and_back_in(make_user: Callable[..., User]) -> None:
    person = make_user("chromium", sign_up=False)
    page = person.page
    page.get_by_role("textbox", name="Username").fill(person.username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("textbox", name="New chat")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.get_by_role("textbox", name="Username").fill(person.username)
    page.get_by_role("textbox", name="Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="wrong username or password")).to_be_visible()
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_opening_a_chat_with_an_unknown_username_says_so(make_user: Callable[..., User]) -> None:
    person = make_user("chromium")
    person.page.get_by_role("textbox", name="New chat").fill("nobody-here")
    person.page.get_by_role("button", name="Open chat").click()
    expect(person.page.get_by_role("alert").filter(has_text="no user called")).to_be_visible()


# WebKit chats with Chromium in e2e/test_webkit.py (WebKitGTK through Selenium), not here.
@pytest.mark.parametrize("pair", ENGINE_PAIRS, indirect=True, ids=lambda p: f"{p[0]}-{p[1]}")
def test_a_message_arrives_live_shows_delivered_and_survives_a_reload(
    pair: tuple[User, User],
) -> None:
    alice, bob = pair
    alice.page.get_by_role("textbox", name="Message").fill("hello bob")
    alice.page.get_by_role("button", name="Send").click()
    log_b = bob.page.get_by_role("log", name="Messages")
    expect(log_b.get_by_text("hello bob")).to_be_visible()
    # Bob has the chat open, so the tick goes past Delivered to Read (e2e/test_ticks.py has each).
    expect(
        alice.page.get_by_role("log", name="Messages").get_by_text("Read", exact=True)
    ).to_be_visible()
    # alice selects her message to copy it; bob's reply arriving meanwhile leaves it selected.
    alice.page.get_by_role("log", name="Messages").get_by_text("hello bob").evaluate(
        """(el) => {
            const range = document.createRange();
            range.selectNodeContents(el.firstChild);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }"""
    )
    bob.page.get_by_role("textbox", name="Message").fill("hi alice")
    bob.page.keyboard.press("Enter")
    expect(alice.page.get_by_role("log", name="Messages").get_by_text("hi alice")).to_be_visible()
    assert alice.page.evaluate("getSelection().toString()") == "hello bob"
    bob.page.reload()
    log_b = bob.page.get_by_role("log", name="Messages")
    expect(log_b.get_by_text("hello bob")).to_be_visible()
    expect(log_b.get_by_text("hi alice")).to_be_visible()


def test_the_room_list_shows_unread_messages_and_presence(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("chromium")
    alice.open_chat_with(bob)
    alice.page.get_by_role("textbox", name="Message").fill("are you there?")
    alice.page.get_by_role("button", name="Send").click()
    room = bob.page.get_by_role("link", name=alice.username)
    expect(room).to_contain_text("are you there?")
    expect(room.get_by_label("1 unread")).to_be_visible()
    expect(room.locator(".dot.online")).to_be_visible()
    alice.page.get_by_role("button", name="Sign out").click()
    expect(room.locator(".dot.online")).to_have_count(0)
    # Signed out for good before the teardown closes her context: closing it while the sign-out
    # was still under way hung Chromium (twice in full runs).
    expect(alice.page.get_by_role("button", name="Sign in")).to_be_visible()


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_two_people_chat_at_a_phone_viewport(
    make_user: Callable[..., User], playwright: Playwright, engine: str
) -> None:
    pixel = device_args(playwright, engine, "Pixel 7")
    alice, bob = make_user(engine, **pixel), make_user(engine, **pixel)
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    alice.page.get_by_role("textbox", name="Message").fill("from my phone")
    alice.page.get_by_role("button", name="Send").click()
    expect(
        bob.page.get_by_role("log", name="Messages").get_by_text("from my phone")
    ).to_be_visible()
    bob.page.get_by_role("textbox", name="Message").fill("mine too")
    bob.page.get_by_role("button", name="Send").click()
    expect(alice.page.get_by_role("log", name="Messages").get_by_text("mine too")).to_be_visible()
    for page in (alice.page, bob.page):
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_a_tap_on_a_chat_opens_it_even_when_the_list_redraws_under_it(
    make_user: Callable[..., User], engine: str
) -> None:
    # Someone coming online redraws the list; a tap pressed before it and released after it
    # must still open the chat (the row's link used to be replaced, and the tap was lost).
    alice, bob = make_user(engine), make_user("chromium")
    alice.open_chat_with(bob)
    alice.page.evaluate("() => { location.hash = '#/'; }")
    expect(alice.page.get_by_role("textbox", name="Message")).to_be_hidden()
    box = alice.page.get_by_role("link", name=bob.username).bounding_box()
    assert box is not None
    alice.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    alice.page.mouse.down()
    alice.page.evaluate("() => window.parley.chat.dispatchEvent(new Event('presence'))")
    alice.page.mouse.up()
    expect(alice.page.get_by_role("textbox", name="Message")).to_be_visible()
