"""Camera on in a voice call: the other side's Remote video shows it, the audio-only view goes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from harness.calls import (
    call_echo_test,
    place_call,
    run_peer,
    status,
    wait_media_flowing,
    wait_until,
)
from harness.people import SCREENSHOTS, User, open_room
from harness.servers import ParleyServer
from harness.viewports import phone


def remote_video(page: Page) -> Locator:
    return page.get_by_label("Remote video")


def audio_only(page: Page) -> Locator:
    """Who the other person is, shown instead of their picture."""
    return page.locator("#audio-only")


def shows_their_picture(user: User) -> None:
    """Remote video visible with a decoded picture, frames rising; the audio-only view gone."""
    expect(remote_video(user.page)).to_be_visible()
    expect(audio_only(user.page)).to_be_hidden()
    wait_media_flowing(user, video=True)  # framesDecoded up by 20, sound still rising
    wait_until(
        lambda: user.page.evaluate("() => document.getElementById('remote-video').videoWidth") > 0,
        f"{user.engine}: Remote video shows no picture",
    )


def shows_no_picture(user: User) -> None:
    expect(remote_video(user.page)).to_be_hidden()
    expect(audio_only(user.page)).to_be_visible()


@pytest.mark.parametrize(
    "engines", [("chromium", "chromium"), ("chromium", "firefox")], ids=lambda p: "-".join(p)
)
def test_camera_on_in_a_voice_call_shows_on_the_other_side_and_goes_off_again(
    make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice = make_user(engines[0], **phone(engines[0]))
    bob = make_user(engines[1])
    open_room(alice, bob)
    place_call(alice, bob, media="audio")
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(bob, video=False)
    for person in (alice, bob):
        shows_no_picture(person)

    # alice turns her camera on: a renegotiation adds her video; bob sees her.
    alice.page.get_by_role("button", name="Camera on").click()
    expect(alice.page.get_by_role("button", name="Camera off")).to_be_visible()
    expect(alice.page.get_by_label("Local video")).to_be_visible()
    shows_their_picture(bob)
    expect(alice.page.get_by_role("button", name="End call")).to_be_in_viewport()
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(SCREENSHOTS / f"camera-on-phone-{engines[0]}.png"))
    bob.page.screenshot(path=str(SCREENSHOTS / f"camera-on-desktop-{engines[1]}.png"))

    # bob turns his on too (his side takes over the receive-only video it answered with).
    bob.page.get_by_role("button", name="Camera on").click()
    shows_their_picture(alice)

    # Camera off, then on again: the picture goes and comes back, the sound goes on throughout.
    alice.page.get_by_role("button", name="Camera off").click()
    shows_no_picture(bob)
    wait_media_flowing(bob, video=False)
    alice.page.get_by_role("button", name="Camera on").click()
    shows_their_picture(bob)
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_camera_on_in_a_voice_call_to_the_echo_test_brings_the_picture_back(
    echo_bot: subprocess.Popen[bytes], make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    call_echo_test(me, "audio")
    shows_no_picture(me)
    me.page.get_by_role("button", name="Camera on").click()
    # The bot accepts the renegotiation and sends my camera back, banner and all.
    shows_their_picture(me)
    me.page.get_by_role("button", name="End call").click()
    expect(me.page.get_by_role("log", name="Messages").get_by_text("Voice call ·")).to_be_visible()


def test_the_python_peer_turns_its_camera_on_in_a_voice_call(
    server: ParleyServer, make_user: Callable[..., User]
) -> None:
    me = make_user("chromium")
    peer = run_peer(
        server, "call", me.username, "--media", "audio", "--camera-on", "--seconds", "300"
    )
    dialog = me.page.get_by_role("alertdialog", name="Incoming call")
    expect(dialog).to_be_visible(timeout=30_000)
    expect(dialog).to_contain_text("Voice call")
    me.page.get_by_role("button", name="Accept").click()
    expect(status(me.page)).to_have_text("Connected")
    shows_their_picture(me)  # the peer's moving stripes, through its renegotiation
    assert me.stats()["video"]["frameWidth"] == 320  # type: ignore[index]
    me.page.get_by_role("button", name="End call").click()
    out, _ = peer.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["media"] == "audio" and stats["frames_received"]["audio"] > 0, stats
