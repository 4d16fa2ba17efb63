"""Voice and video calls between two people in real browsers with fake media."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import ENGINE_PAIRS, User


def status(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#call-status")


def timeline(user: User, text: str):  # type: ignore[no-untyped-def]
    return user.page.get_by_role("log", name="Messages").get_by_text(text)


def place_call(caller: User, callee: User, media: str = "video") -> None:
    button = "Video call" if media == "video" else "Voice call"
    caller.page.get_by_role("button", name=button).click()
    dialog = callee.page.get_by_role("alertdialog", name="Incoming call")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{caller.username} is calling")
    expect(dialog).to_contain_text("Video call" if media == "video" else "Voice call")
    expect(status(caller.page)).to_have_text("Ringing…")


def wait_media_flowing(user: User, video: bool, seconds: float = 20) -> None:
    """framesDecoded up by 20 (video) and audio bytes rising, within `seconds`."""
    deadline = time.monotonic() + seconds
    first = None
    while time.monotonic() < deadline:
        stats = user.stats()
        if stats and stats["connectionState"] == "connected":
            if first is None:
                first = stats
            else:
                frames = stats["video"]["framesDecoded"] - first["video"]["framesDecoded"]
                audio = stats["audio"]["bytesReceived"] - first["audio"]["bytesReceived"]
                if audio > 0 and (not video or frames >= 20):
                    return
        time.sleep(0.25)
    raise AssertionError(f"media not flowing for {user.engine} {user.username}: {user.stats()}")


def test_a_video_call_connects_both_ways_and_lands_in_the_history(pair: tuple[User, User]) -> None:
    alice, bob = pair
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
        expect(person.page.get_by_label("Remote video")).to_be_visible()
        expect(person.page.get_by_label("Local video")).to_be_visible()
    wait_media_flowing(alice, video=True)
    wait_media_flowing(bob, video=True)
    expect(alice.page.get_by_label("Call duration")).not_to_have_text("0:00")

    alice.page.get_by_role("button", name="Mute").click()
    expect(alice.page.get_by_role("button", name="Unmute")).to_be_visible()
    alice.page.get_by_role("button", name="Unmute").click()
    bob.page.get_by_role("button", name="Camera off").click()
    expect(bob.page.get_by_role("button", name="Camera on")).to_be_visible()
    bob.page.get_by_role("button", name="Camera on").click()
    expect(bob.page.get_by_role("button", name="Camera off")).to_be_visible()

    bob.page.get_by_role("button", name="End call").click()
    expect(status(alice.page)).to_contain_text("Call ended")
    for person in (alice, bob):
        record = person.page.get_by_role("log", name="Messages").get_by_text("Video call ·")
        expect(record).to_be_visible()
        expect(person.page.get_by_role("region", name="Call")).to_be_hidden()
        assert person.page.evaluate("() => window.parley.calls.call") is None


def test_a_voice_call_uses_the_audio_only_view(pair: tuple[User, User]) -> None:
    alice, bob = pair
    place_call(alice, bob, media="audio")
    bob.page.get_by_role("button", name="Accept").click()
    for person, other in ((alice, bob), (bob, alice)):
        expect(status(person.page)).to_have_text("Connected")
        expect(person.page.get_by_label("Remote video")).to_be_hidden()
        expect(person.page.locator("#call-peer")).to_have_text(other.username)
        expect(person.page.get_by_role("button", name="Camera off")).to_be_hidden()
    wait_media_flowing(alice, video=False)
    wait_media_flowing(bob, video=False)
    alice.page.get_by_role("button", name="End call").click()
    expect(timeline(bob, "Voice call ·")).to_be_visible()


def test_a_declined_call_tells_the_caller_and_both_rooms(pair: tuple[User, User]) -> None:
    alice, bob = pair
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Decline").click()
    expect(status(alice.page)).to_have_text("Call ended · Declined")
    expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
    for person in (alice, bob):
        expect(timeline(person, "Declined video call")).to_be_visible()


def test_a_call_cancelled_while_ringing_stops_the_callees_dialog(pair: tuple[User, User]) -> None:
    alice, bob = pair
    place_call(alice, bob)
    alice.page.get_by_role("button", name="End call").click()
    expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
    for person in (alice, bob):
        expect(timeline(person, "Cancelled video call")).to_be_visible()


@pytest.mark.parametrize("engines", ENGINE_PAIRS[:1], ids=["chromium-chromium"])
def test_an_unanswered_call_times_out_as_missed(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = make_user(engines[0]), make_user(engines[1])
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    place_call(alice, bob)
    # The test server rings for 6 s (CALL_RING_TIMEOUT).
    expect(status(alice.page)).to_have_text("Call ended · No answer", timeout=20_000)
    expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
    for person in (alice, bob):
        expect(timeline(person, "Missed video call")).to_be_visible()


def test_calling_someone_in_a_call_gets_busy(make_user: Callable[..., User]) -> None:
    alice, bob, carol = make_user("chromium"), make_user("chromium"), make_user("firefox")
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    carol.open_chat_with(bob)
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    carol.page.get_by_role("button", name="Video call").click()
    expect(status(carol.page)).to_have_text("Call ended · Busy")
    expect(timeline(carol, "Busy · video call")).to_be_visible()
    alice.page.get_by_role("button", name="End call").click()
