"""Ticks that mean something: Sent, Delivered and Read come from the server, live and on reload."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Locator, Page, Playwright, expect

from harness.browsers import device_args
from harness.people import SCREENSHOTS, User

WAIT = 30_000  # ms: a loaded two-core machine runs two browsers and the server


def own_message(page: Page, text: str) -> Locator:
    """The list item of one of the user's own messages in the open chat."""
    log = page.get_by_role("log", name="Messages")
    return log.get_by_role("listitem").filter(has_text=text)


def shows_tick(page: Page, text: str, tick: str) -> None:
    """Wait until the message shows exactly this tick (and no other)."""
    message = own_message(page, text)
    expect(message.get_by_text(tick, exact=True)).to_be_visible(timeout=WAIT)
    for other in {"Sending", "Sent", "Delivered", "Read"} - {tick}:
        expect(message.get_by_text(other, exact=True)).to_have_count(0)


# Whether a page shows `name` (someone it shares a room with) online: other people it shares a
# room with, such as the echo bot once a test has started it, do not count.
ONLINE = """([name, online]) => {
  const room = window.parley.chat.rooms.find((r) => r.peer.username === name);
  return !!room && window.parley.chat.online.has(room.peer.id) === online;
}"""


def sees_online(page: Page, other: User, online: bool) -> None:
    """Wait until `page` shows `other` online (or gone)."""
    page.wait_for_function(ONLINE, arg=[other.username, online], timeout=WAIT)


def test_ticks_go_sent_delivered_read_live_and_stay_after_a_reload(
    make_user: Callable[..., User], playwright: Playwright
) -> None:
    # Alice on a phone-sized Chromium, Bob on a desktop Firefox.
    alice = make_user("chromium", **device_args(playwright, "chromium", "Pixel 7"))
    bob = make_user("firefox")
    alice.open_chat_with(bob)
    sees_online(alice.page, bob, True)

    # Bob closes Parley (as when reloading, or the phone in a pocket); alice's page sees him go.
    bob.page.close()
    sees_online(alice.page, bob, False)
    alice.page.get_by_role("textbox", name="Message").fill("Are you there?")
    alice.page.get_by_role("button", name="Send").click()
    shows_tick(alice.page, "Are you there?", "Sent")
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=SCREENSHOTS / "ticks-sent-phone.png")

    # Bob opens the app (the chat list, not the chat): alice sees Delivered without a reload.
    bob.page = bob.context.new_page()
    bob.page.goto("/")
    chat = bob.page.get_by_role("link", name=alice.username)
    expect(chat).to_contain_text("Are you there?", timeout=WAIT)
    shows_tick(alice.page, "Are you there?", "Delivered")
    alice.page.screenshot(path=SCREENSHOTS / "ticks-delivered-phone.png")

    # Bob opens the chat and so reads it: alice sees Read.
    chat.click()
    bob_log = bob.page.get_by_role("log", name="Messages")
    expect(bob_log.get_by_text("Are you there?")).to_be_visible()
    shows_tick(alice.page, "Are you there?", "Read")

    # A message while Bob has the chat open goes straight on to Read as well.
    alice.page.get_by_role("textbox", name="Message").fill("Lunch at one?")
    alice.page.get_by_role("button", name="Send").click()
    expect(bob_log.get_by_text("Lunch at one?")).to_be_visible()
    shows_tick(alice.page, "Lunch at one?", "Read")

    # Alice reloads: the ticks come from the server, so they are the same.
    alice.page.reload()
    shows_tick(alice.page, "Are you there?", "Read")
    shows_tick(alice.page, "Lunch at one?", "Read")
    alice.page.screenshot(path=SCREENSHOTS / "ticks-read-phone.png")


def test_a_message_sent_while_the_other_person_reloads_turns_delivered_once_they_are_back(
    make_user: Callable[..., User],
) -> None:
    # Firefox sends, Chromium reloads: the message lands while Bob has no socket.
    alice, bob = make_user("firefox"), make_user("chromium")
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    expect(bob.page.get_by_role("textbox", name="Message")).to_be_visible()
    sees_online(alice.page, bob, True)
    bob.page.goto("about:blank")
    sees_online(alice.page, bob, False)
    alice.page.get_by_role("textbox", name="Message").fill("sent during your reload")
    alice.page.get_by_role("button", name="Send").click()
    shows_tick(alice.page, "sent during your reload", "Sent")
    bob.page.go_back()  # back into the chat, as the reload would have left him
    expect(
        bob.page.get_by_role("log", name="Messages").get_by_text("sent during your reload")
    ).to_be_visible(timeout=WAIT)
    shows_tick(alice.page, "sent during your reload", "Read")
    alice.page.reload()
    shows_tick(alice.page, "sent during your reload", "Read")
