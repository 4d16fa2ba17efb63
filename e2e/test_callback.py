"""Call back: a missed or declined call record rings the other person again, with the same media."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, Locator, expect

from harness.calls import RING, place_call, status
from harness.people import SCREENSHOTS, User, open_room, people_on
from harness.servers import ParleyServer


def record(user: User, text: str) -> Locator:
    """The call record in the user's timeline that reads `text`."""
    log = user.page.get_by_role("log", name="Messages")
    return log.get_by_role("listitem").filter(has_text=text)


def call_back(user: User, text: str) -> Locator:
    return record(user, text).get_by_role("button", name="Call back")


def test_the_callee_calls_back_a_missed_voice_call_as_a_voice_call(
    ringing_server: ParleyServer, browsers: Callable[[str], Browser]
) -> None:
    with people_on(ringing_server, browsers, "back") as person:
        alice, bob = person("chromium"), person("firefox")
        bob.page.set_viewport_size({"width": 390, "height": 844})
        open_room(alice, bob)
        place_call(alice, bob, media="audio")
        expect(status(alice.page)).to_have_text(
            "Call ended · No answer", timeout=(RING + 30) * 1000
        )
        for someone in (alice, bob):
            expect(call_back(someone, "Missed voice call")).to_be_visible()
        SCREENSHOTS.mkdir(exist_ok=True)
        bob.page.screenshot(path=str(SCREENSHOTS / "call-back-missed-phone.png"))

        # The person who missed it taps Call back: the caller's phone rings, a voice call.
        call_back(bob, "Missed voice call").click()
        dialog = alice.page.get_by_role("alertdialog", name="Incoming call")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"{bob.username} is calling")
        expect(dialog).to_contain_text("Voice call")
        expect(status(bob.page)).to_have_text("Ringing…")
        dialog.get_by_role("button", name="Accept").click()
        for someone in (alice, bob):
            expect(status(someone.page)).to_have_text("Connected")
            expect(someone.page.get_by_label("Remote video")).to_be_hidden()
        bob.page.get_by_role("button", name="End call").click()
        # A call that happened has nothing to call back.
        for someone in (alice, bob):
            expect(record(someone, "Voice call ·")).to_be_visible()
            expect(call_back(someone, "Voice call ·")).to_have_count(0)


def test_a_declined_video_call_offers_call_back_to_both_and_rings_as_video(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("firefox")
    open_room(alice, bob)
    place_call(alice, bob, media="video")
    bob.page.get_by_role("button", name="Decline").click()
    expect(status(alice.page)).to_have_text("Call ended · Declined")
    for someone in (alice, bob):
        expect(call_back(someone, "Declined video call")).to_be_visible()
    # Once the call screen has gone, the caller tries again from the record.
    expect(alice.page.get_by_role("region", name="Call")).to_be_hidden()
    call_back(alice, "Declined video call").click()
    dialog = bob.page.get_by_role("alertdialog", name="Incoming call")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{alice.username} is calling")
    expect(dialog).to_contain_text("Video call")
    dialog.get_by_role("button", name="Decline").click()
    expect(status(alice.page)).to_have_text("Call ended · Declined")
    for someone in (alice, bob):
        expect(record(someone, "Declined video call")).to_have_count(2)


def test_a_cancelled_call_offers_call_back_only_where_it_rang(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("chromium")
    open_room(alice, bob)
    place_call(alice, bob, media="video")
    alice.page.get_by_role("button", name="End call").click()
    expect(call_back(bob, "Cancelled video call")).to_be_visible()
    expect(record(alice, "Cancelled video call")).to_be_visible()
    expect(call_back(alice, "Cancelled video call")).to_have_count(0)
