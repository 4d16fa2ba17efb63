"""Speaker choice in Firefox with real speakers: two outputs of a PulseAudio server of the test's.

Firefox lists speakers and lets a page route sound to one only while the page may see the
microphone (a capture is running or was allowed in this page), or after selectAudioOutput().
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from harness.browsers import close_surely
from harness.calls import place_call, status, wait_media_flowing, wait_until
from harness.people import User, open_room, people_on
from harness.servers import ParleyServer
from harness.sound import firefox_on, pulse_speakers

SPEAKERS = ("Speakers", "Headphones")


@pytest.fixture(scope="module")
def firefox_with_speakers(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Firefox playing through a sound server with two speakers."""
    with pulse_speakers(tmp_path_factory.mktemp("speakers"), *SPEAKERS) as address:
        firefox = firefox_on(playwright, address)
        yield firefox
        close_surely(firefox)


def sink_ids(page: Page) -> list[str]:
    """The speaker each element that plays the other side sends its sound to."""
    script = "() => ['remote-video', 'remote-audio'].map((i) => document.getElementById(i).sinkId)"
    return list(page.evaluate(script))


def wait_sink(page: Page, sink: str) -> None:
    """Wait until both elements playing the other side play on `sink`."""
    try:
        wait_until(lambda: sink_ids(page) == [sink, sink], "")
    except AssertionError:
        raise AssertionError(f"not playing on {sink!r}: {sink_ids(page)}") from None


def answered(alice: User, bob: User, media: str) -> None:
    place_call(alice, bob, media)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=media == "video")


def hang_up(alice: User, bob: User) -> None:
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")


def test_firefox_plays_the_call_on_the_chosen_speaker_and_keeps_it_for_the_next_calls(
    server: ParleyServer, browsers: Callable[[str], Browser], firefox_with_speakers: Browser
) -> None:
    pick = lambda engine: firefox_with_speakers if engine == "firefox" else browsers(engine)  # noqa: E731
    with people_on(server, pick, "spk") as person:
        alice, bob = person("firefox"), person("chromium")
        open_room(alice, bob)
        answered(alice, bob, "video")
        speaker = alice.page.get_by_role("combobox", name="Speaker")
        expect(speaker.locator("option")).to_have_text(["Default speaker", *SPEAKERS])
        speaker.select_option(label="Headphones")
        chosen = str(speaker.locator("option", has_text="Headphones").get_attribute("value"))
        wait_sink(alice.page, chosen)
        expect(speaker).to_have_value(chosen)
        hang_up(alice, bob)

        # The next call in the same page: a voice call, played by the audio element.
        answered(alice, bob, "audio")
        expect(speaker).to_have_value(chosen)
        wait_sink(alice.page, chosen)
        hang_up(alice, bob)

        # And after a reload, when the page has not seen the microphone yet as the call starts.
        alice.page.reload()
        expect(alice.page.get_by_role("textbox", name="Message")).to_be_visible()
        wait_until(
            lambda: alice.page.evaluate("() => window.parley.signaling.state === 'open'"),
            "the page did not connect again after the reload",
        )
        answered(alice, bob, "video")
        speaker = alice.page.get_by_role("combobox", name="Speaker")
        expect(speaker).to_have_value(chosen)
        expect(speaker.locator("option:checked")).to_have_text("Headphones")
        wait_sink(alice.page, chosen)
        hang_up(alice, bob)
