"""Camera on in a voice call is kept across a reload: the page comes back sending video."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from harness.calls import place_call, sent_media, status, wait_media_flowing, wait_until
from harness.people import User, open_room


def camera_on_sent(user: User) -> bool:
    """The page has a live camera track and its call encodes video frames."""
    live = user.page.evaluate(
        """() => {
            const stream = window.parley.calls.call && window.parley.calls.call.localStream;
            const track = stream && stream.getVideoTracks()[0];
            return Boolean(track && track.readyState === "live" && track.enabled);
        }"""
    )
    return bool(live) and sent_media(user)[0] > 0


def sending_video(user: User) -> None:
    """Wait until the user's page sends video frames again and again (the count rising by 20)."""
    wait_until(lambda: camera_on_sent(user), f"{user.engine}: no camera sent")
    first = sent_media(user)[0]
    wait_until(lambda: sent_media(user)[0] >= first + 20, f"{user.engine}: video frames stopped")


def their_picture(page: Page) -> None:
    expect(page.get_by_label("Remote video")).to_be_visible()
    wait_until(
        lambda: page.evaluate("() => document.getElementById('remote-video').videoWidth") > 0,
        "Remote video shows no picture",
    )


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("firefox", "chromium")], ids=lambda p: "-".join(p)
)
def test_a_voice_call_with_the_camera_on_comes_back_with_it_on_after_a_reload(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = make_user(engines[0]), make_user(engines[1])
    open_room(alice, bob)
    place_call(alice, bob, media="audio")
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="Camera on").click()
    expect(alice.page.get_by_role("button", name="Camera off")).to_be_visible()
    sending_video(alice)
    their_picture(bob.page)

    alice.page.reload()
    # Back in the call, still a voice call, with the camera on: sending, shown, and seen by bob.
    expect(status(alice.page)).to_have_text("Connected", timeout=30_000)
    expect(alice.page.get_by_role("button", name="Camera off")).to_be_visible()
    expect(alice.page.get_by_label("Local video")).to_be_visible()
    sending_video(alice)
    wait_media_flowing(bob, video=True)
    their_picture(bob.page)

    # Camera off, then a reload: it stays off (a voice call again).
    alice.page.get_by_role("button", name="Camera off").click()
    expect(bob.page.get_by_label("Remote video")).to_be_hidden()
    alice.page.reload()
    expect(status(alice.page)).to_have_text("Connected", timeout=30_000)
    expect(alice.page.get_by_role("button", name="Camera on")).to_be_visible()
    wait_media_flowing(alice, video=False)
    assert not camera_on_sent(alice)
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
