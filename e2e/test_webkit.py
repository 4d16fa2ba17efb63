"""WebKit (every iPhone browser) as a person uses it: Debian's WebKitGTK, with Chromium users.

WebKitGTK here has no WebRTC (README, WebKit): calls are covered as far as WebKit can go, saying in
plain words that this browser cannot take them, and the caller learning it at once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from playwright.sync_api import expect

from harness.people import PASSWORD, SCREENSHOTS, User
from harness.servers import ParleyServer
from harness.webkit import IPHONE, WebKitPerson, webkit_person, x_display  # noqa: F401

WebKitMaker = Callable[..., WebKitPerson]
LOG = "[role=log][aria-label=Messages]"
MESSAGE = f"{LOG} li"
# The tick of a message the other person's device has: Read once they look at the chat (chat.js).
REACHED = re.compile(r"Delivered|Read")


def name() -> str:
    return f"wk{secrets.token_hex(4)}"


def open_room_with(person: WebKitPerson, other: User) -> None:
    """The WebKit person opens a chat with `other`, who opens it from their list."""
    person.open_chat_with(other.username)
    other.page.get_by_role("link", name=person.username).click()
    expect(other.page.get_by_role("textbox", name="Message")).to_be_visible()


def fits_the_width(person: WebKitPerson) -> bool:
    return bool(
        person.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
    )


def reached(person: WebKitPerson, text: str) -> None:
    """Wait until the person's own message `text` shows it reached the other person."""
    person.wait(
        lambda _: any(
            text in el.text and REACHED.search(el.text) for el in person.find(f"{MESSAGE}.mine")
        )
    )


def phone_sized(person: WebKitPerson) -> None:
    """Size the window (all page: no toolbar) like an iPhone's screen."""
    person.driver.set_window_size(*IPHONE)
    person.wait(
        lambda d: d.execute_script("return [window.innerWidth, window.innerHeight]") == list(IPHONE)
    )


def test_sign_up_a_wrong_password_and_sign_in_in_webkit(webkit_person: WebKitMaker) -> None:  # noqa: F811
    person = webkit_person(name())
    person.button("Sign out").click()
    person.fill("Username", person.username)
    person.fill("Password", "wrong password")
    person.button("Sign in").click()
    person.sees("[role=alert]", "wrong username or password")
    person.fill("Password", PASSWORD)
    person.button("Sign in").click()
    person.button("Sign out")
    person.textbox("New chat")


def test_webkit_and_chromium_chat_both_ways_at_an_iphone_size(
    webkit_person: WebKitMaker,  # noqa: F811
    make_user: Callable[..., User],
) -> None:
    person, friend = webkit_person(name()), make_user("chromium")
    phone_sized(person)
    open_room_with(person, friend)
    # One pane at a time on a phone: in a chat, the list is gone and Back leads to it.
    assert not person.find(".list-pane")[0].is_displayed()
    person.button("Back")
    person.send("hello from webkit")
    expect(
        friend.page.get_by_role("log", name="Messages").get_by_text("hello from webkit")
    ).to_be_visible()
    reached(person, "hello from webkit")
    friend.page.get_by_role("textbox", name="Message").fill("hello from chromium")
    friend.page.get_by_role("button", name="Send").click()
    person.sees(MESSAGE, "hello from chromium")
    expect(friend.page.locator("li.mine").filter(has_text="hello from chromium")).to_contain_text(
        REACHED
    )
    assert fits_the_width(person)
    person.driver.save_screenshot(str(SCREENSHOTS / "webkit-chat-phone.png"))
    person.button("Back").click()
    person.wait(lambda _: person.find(".rooms li"))
    person.driver.save_screenshot(str(SCREENSHOTS / "webkit-chats-phone.png"))
    person.sees(".rooms li", "hello from chromium")
    person.sees(".rooms li", friend.username)
    assert fits_the_width(person)


def test_a_call_to_webkit_says_it_cannot_take_calls_and_the_caller_hears_so(
    webkit_person: WebKitMaker,  # noqa: F811
    make_user: Callable[..., User],
) -> None:
    person, caller = webkit_person(name()), make_user("chromium")
    phone_sized(person)
    open_room_with(person, caller)
    # This browser's own call buttons stay, aria-disabled, with the reason beside them.
    video = person.button("Video call")
    assert video.get_attribute("aria-disabled") == "true"
    person.sees("#no-calls", "This browser can't make calls")
    video.click()
    assert not person.find("#call")[0].is_displayed()

    caller.page.get_by_role("button", name="Video call").click()
    dialog = person.sees("#incoming", f"{caller.username} tried to call you")
    assert "this browser can't take calls" in dialog.text
    person.driver.save_screenshot(str(SCREENSHOTS / "webkit-call-refused-phone.png"))
    expect(caller.page.locator("#call")).to_contain_text("cannot take calls on this device")
    # Nothing rings on: both rooms record the call as failed.
    expect(
        caller.page.get_by_role("log", name="Messages").get_by_text("Failed video call")
    ).to_be_visible()
    person.button("OK").click()
    person.wait(lambda _: not dialog.is_displayed())
    person.sees(MESSAGE, "Failed video call")


def test_the_outbox_and_the_offline_shell_in_webkit(
    webkit_person: WebKitMaker,  # noqa: F811
    make_user: Callable[..., User],
    server: ParleyServer,
) -> None:
    person, friend = webkit_person(name()), make_user("chromium")
    open_room_with(person, friend)
    person.wait(lambda d: d.execute_script("return navigator.serviceWorker.controller !== null"))
    server.stop()
    try:
        person.send("written offline")
        person.sees(f"{MESSAGE}.pending", "Sending")
        # The service worker serves the app shell without the server, and says it is offline.
        person.driver.refresh()
        person.sees("#banner", "You are offline")
        title = "return document.getElementById('title').textContent"
        assert person.driver.execute_script(title) == "Parley"
    finally:
        server.start()
    # The message waited in the outbox (localStorage) through the reload and goes out now.
    person.driver.refresh()
    person.sees(MESSAGE, "written offline")
    friend.page.reload()
    expect(
        friend.page.get_by_role("log", name="Messages").get_by_text("written offline")
    ).to_be_visible()
    reached(person, "written offline")
