"""Where the other person is heard and seen: the Speaker select and Picture in picture."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from harness.calls import place_call, status, wait_media_flowing, wait_until
from harness.people import SCREENSHOTS, User, open_room
from harness.viewports import DESKTOP, PHONE

# Where the remote picture shows and whether it plays: in the page, or in the Document PiP window.
WHERE_IS_THE_VIDEO = """() => {
    const pipWindow = window.documentPictureInPicture && documentPictureInPicture.window;
    const inWindow = pipWindow ? pipWindow.document.getElementById("remote-video") : null;
    const page = document.getElementById("remote-video");
    const inPage = page && !page.classList.contains("elsewhere") ? page : null;
    const video = inWindow || inPage;
    const track = video && video.srcObject && video.srcObject.getVideoTracks()[0];
    return {
        window: Boolean(pipWindow),
        inWindow: Boolean(inWindow),
        inPage: Boolean(inPage),
        live: Boolean(track && track.readyState === "live"),
        playing: Boolean(video && !video.paused && video.readyState >= 2),
        time: video ? video.currentTime : 0,
    };
}"""


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def video_state(page: Page) -> dict[str, object]:
    return dict(page.evaluate(WHERE_IS_THE_VIDEO))


def wait_video_playing(page: Page, where: str) -> None:
    """Wait until the remote video is in `where` ("window" or "page") and its time moves on."""
    first: list[float] = []

    def advancing() -> bool:
        state = video_state(page)
        placed = state["inWindow"] if where == "window" else state["inPage"] and not state["window"]
        if not (placed and state["live"] and state["playing"]):
            return False
        first.append(float(state["time"]))  # type: ignore[arg-type]
        return first[-1] - first[0] >= 0.5

    try:
        wait_until(advancing, "")
    except AssertionError:
        raise AssertionError(f"not playing in the {where}: {video_state(page)}") from None


def connected(alice: User, bob: User, media: str = "video") -> None:
    open_room(alice, bob)
    place_call(alice, bob, media)
    bob.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=media == "video")


# Chromium's fake devices include two speakers besides the default one.
SPEAKERS = ["Fake Audio Output 1", "Fake Audio Output 2"]


def sink_ids(page: Page) -> list[str]:
    """The speaker each element that plays the other side sends its sound to."""
    return list(
        page.evaluate(
            """() => ["remote-video", "remote-audio"].map((id) => {
                const pip = window.documentPictureInPicture && documentPictureInPicture.window;
                return (document.getElementById(id) || pip.document.getElementById(id)).sinkId;
            })"""
        )
    )


def wait_sink(page: Page, sink: str) -> None:
    """Wait until both elements playing the other side play on `sink` ("" = the default)."""
    try:
        wait_until(lambda: sink_ids(page) == [sink, sink], "")
    except AssertionError:
        raise AssertionError(f"not playing on {sink!r}: {sink_ids(page)}") from None


def option_value(select: Locator, label: str) -> str:
    return str(select.locator("option", has_text=label).get_attribute("value"))


def test_the_chosen_speaker_plays_the_call_and_is_kept_for_the_next_call(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium", **DESKTOP), make_user("chromium", **PHONE)
    first, second = SPEAKERS
    connected(alice, bob)
    speaker = alice.page.get_by_role("combobox", name="Speaker")
    expect(speaker).to_be_visible()
    # The browser's default, then every speaker it lists, by name.
    expect(speaker.locator("option")).to_have_text(["Default speaker", first, second])
    expect(speaker).to_have_value("")
    assert sink_ids(alice.page) == ["", ""]
    # Both controls among the call buttons, on a phone and on a desktop.
    expect(bob.page.get_by_role("combobox", name="Speaker")).to_be_visible()
    expect(bob.page.get_by_role("button", name="Picture in picture")).to_be_visible()
    shot(bob.page, "call-speaker-pip-phone")
    shot(alice.page, "call-speaker-pip-desktop")

    speaker.select_option(label=second)
    chosen = option_value(speaker, second)
    assert chosen not in ("", "default"), chosen
    wait_sink(alice.page, chosen)
    # Changing the microphone in the settings keeps the speaker.
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    alice.page.get_by_role("button", name="Microphone and camera").click()
    microphone = alice.page.get_by_role("combobox", name="Microphone")
    microphone.select_option(index=1)

    # The next call, after a reload, and a voice one (played by the audio element): same speaker.
    alice.page.reload()
    expect(alice.page.get_by_role("textbox", name="Message")).to_be_visible()
    # Connected again (the bar's "Connecting…" gone), or the call could not be placed yet.
    wait_until(
        lambda: alice.page.evaluate("() => window.parley.signaling.state === 'open'"),
        "the page did not connect again after the reload",
    )
    place_call(alice, bob, "audio")
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    speaker = alice.page.get_by_role("combobox", name="Speaker")
    expect(speaker).to_have_value(chosen)
    expect(speaker.locator("option:checked")).to_have_text(second)
    wait_sink(alice.page, chosen)
    wait_media_flowing(alice, video=False)
    # A voice call has no remote picture to float.
    expect(alice.page.get_by_role("button", name="Picture in picture")).to_be_hidden()

    # Back to the default: remembered as such for the call after.
    speaker.select_option(label="Default speaker")
    wait_sink(alice.page, "")
    stored = alice.page.evaluate("() => JSON.parse(localStorage.getItem('parley.devices'))")
    assert "audioOutputId" not in stored and stored.get("audioDeviceId"), stored
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_picture_in_picture_floats_the_remote_video_and_brings_it_back(
    make_user: Callable[..., User], engine: str
) -> None:
    alice, bob = make_user(engine, **DESKTOP), make_user("chromium", **PHONE)
    connected(alice, bob)
    wait_media_flowing(bob, video=True)
    pip = alice.page.get_by_role("button", name="Picture in picture")
    expect(pip).to_be_visible()
    expect(pip).to_have_attribute("aria-pressed", "false")
    # Both have the Document Picture-in-Picture API (Firefox since 15x): the video moves into it.
    assert alice.page.evaluate("() => 'documentPictureInPicture' in window")

    pip.click()
    expect(pip).to_have_attribute("aria-pressed", "true")
    wait_video_playing(alice.page, "window")
    expect(alice.page.get_by_text("Showing in picture in picture")).to_be_visible()
    expect(alice.page.get_by_label("Remote video")).to_be_hidden()
    shot(alice.page, f"call-pip-{engine}-desktop")

    # Leaving from the call screen: the window closes and the video plays in the page again.
    pip.click()
    expect(pip).to_have_attribute("aria-pressed", "false")
    wait_video_playing(alice.page, "page")
    assert not video_state(alice.page)["window"]
    expect(alice.page.get_by_label("Remote video")).to_be_visible()
    expect(alice.page.get_by_text("Showing in picture in picture")).to_have_count(0)

    # Closing the small window itself (its own close button) brings it back too.
    pip.click()
    wait_video_playing(alice.page, "window")
    alice.page.evaluate("() => documentPictureInPicture.window.close()")
    expect(pip).to_have_attribute("aria-pressed", "false")
    wait_video_playing(alice.page, "page")

    # The other side hanging up closes it: nothing floats over the next tab after the call.
    pip.click()
    wait_video_playing(alice.page, "window")
    bob.page.get_by_role("button", name="End call").click()
    expect(status(alice.page)).to_contain_text("Call ended")
    wait_until(
        lambda: not video_state(alice.page)["window"] and bool(video_state(alice.page)["inPage"]),
        "the picture-in-picture window outlived the call",
    )
    expect(pip).to_be_hidden()


def test_no_speaker_choice_where_the_browser_lists_no_speakers(
    make_user: Callable[..., User],
) -> None:
    # Firefox lists the machine's speakers, and a machine with no sound server has none.
    alice, bob = make_user("firefox", **DESKTOP), make_user("chromium", **DESKTOP)
    connected(alice, bob)
    can = alice.page.evaluate(
        """async () => ({
            setSinkId: "setSinkId" in HTMLMediaElement.prototype,
            speakers: (await navigator.mediaDevices.enumerateDevices())
                .filter((d) => d.kind === "audiooutput").length,
        })"""
    )
    assert can == {"setSinkId": True, "speakers": 0}, can
    expect(alice.page.get_by_role("button", name="Mute")).to_be_visible()
    expect(alice.page.get_by_role("combobox", name="Speaker")).to_be_hidden()
    # Chromium, on the other side, lists its outputs.
    expect(bob.page.get_by_role("combobox", name="Speaker")).to_be_visible()
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
