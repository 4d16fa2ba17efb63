"""Share screen: the other side sees the screen instead of the camera; Stop sharing goes back.

Chromium only: its fake media (harness/browsers.py) gives getDisplayMedia a fake screen, and the
fake-UI switch picks it without a prompt. Which track is on the wire is read from the sender's
stats (the media source behind its outbound video), and the other side must keep decoding frames.
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Playwright, expect

from harness.browsers import device_args
from harness.calls import place_call, status, wait_media_flowing, wait_until
from harness.people import SCREENSHOTS, User, open_room


def received_size(user: User) -> tuple[int, int]:
    """The size of the video frames the user's call is receiving now."""
    video = (user.stats() or {}).get("video") or {}
    return int(video.get("frameWidth", 0)), int(video.get("frameHeight", 0))


def local_sdp(user: User) -> str:
    return str(user.page.evaluate("() => window.parley.calls.call.other.pc.localDescription.sdp"))


# The track the encoder is sending now: the media source behind the outbound video stream. Frame
# sizes cannot tell the screen from the camera: while bandwidth estimation ramps up the encoder
# scales the camera down, and Chromium's fake camera and screen can both end at 1280x720.
SENT_TRACK = """async () => {
  const report = await window.parley.calls.call.other.pc.getStats();
  const out = [...report.values()].find((s) => s.type === "outbound-rtp" && s.kind === "video");
  const source = out && report.get(out.mediaSourceId);
  return (source && source.trackIdentifier) || null;
}"""


def sends(sender: User, receiver: User, track: str, why: str) -> None:
    """The sender encodes `track`, and its frames keep arriving at the receiver."""
    wait_until(lambda: sender.page.evaluate(SENT_TRACK) == track, why, 30)
    wait_media_flowing(receiver, video=True)


def track_id(user: User, which: str) -> str:
    """The id of the call's screen track or camera track on the user's side."""
    script = {
        "screen": "() => window.parley.calls.call.screenTrack.id",
        "camera": "() => window.parley.calls.call.localStream.getVideoTracks()[0].id",
    }[which]
    return str(user.page.evaluate(script))


def video_call(alice: User, bob: User) -> None:
    open_room(alice, bob)
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(bob, video=True)


def test_share_screen_sends_the_screen_and_stop_sharing_returns_to_the_camera(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("chromium")
    video_call(alice, bob)
    wait_until(lambda: received_size(bob) != (0, 0), "bob receives no frame size")
    camera = track_id(alice, "camera")
    sends(alice, bob, camera, "the call does not send the camera")
    offer = local_sdp(alice)

    alice.page.get_by_role("button", name="Share screen").click()
    stop = alice.page.get_by_role("button", name="Stop sharing")
    expect(stop).to_be_visible()
    screen = alice.page.evaluate(
        "() => { const s = window.parley.calls.call.screenTrack.getSettings();"
        " return [s.width, s.height]; }"
    )
    assert screen[0] > 0 and screen[1] > 0, screen
    sends(alice, bob, track_id(alice, "screen"), "the call does not send the screen")
    assert local_sdp(alice) == offer  # replaceTrack: no renegotiation
    expect(bob.page.locator("#audio-only")).to_be_hidden()
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(SCREENSHOTS / "share-screen-desktop.png"))

    stop.click()
    expect(alice.page.get_by_role("button", name="Share screen")).to_be_visible()
    sends(alice, bob, camera, "Stop sharing did not bring the camera back")

    # The browser's own "Stop sharing" ends the track: the call goes back to the camera as well.
    alice.page.get_by_role("button", name="Share screen").click()
    expect(alice.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    sends(alice, bob, track_id(alice, "screen"), "the screen did not come again")
    alice.page.evaluate(
        "() => { const t = window.parley.calls.call.screenTrack;"
        " t.stop(); t.dispatchEvent(new Event('ended')); }"
    )
    expect(alice.page.get_by_role("button", name="Share screen")).to_be_visible()
    sends(alice, bob, camera, "the browser's stop did not bring the camera back")
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


def test_share_screen_is_hidden_on_a_phone(
    make_user: Callable[..., User], playwright: Playwright
) -> None:
    # The same Chromium has getDisplayMedia in both contexts: only the phone hides the button.
    alice = make_user("chromium", **device_args(playwright, "chromium", "Pixel 7"))
    bob = make_user("chromium")
    video_call(alice, bob)
    expect(bob.page.get_by_role("button", name="Share screen")).to_be_visible()
    expect(alice.page.get_by_role("button", name="Camera off")).to_be_visible()
    expect(alice.page.get_by_role("button", name="Share screen")).to_have_count(0)
    assert alice.page.evaluate("() => typeof navigator.mediaDevices.getDisplayMedia") == "function"
    SCREENSHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(SCREENSHOTS / "share-screen-hidden-phone.png"))
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
