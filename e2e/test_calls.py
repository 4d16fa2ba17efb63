"""Voice and video calls between two people in real browsers with fake media."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect

from harness.browsers import OWN_CONNECTION
from harness.calls import (
    RING,
    place_call,
    status,
    timeline,
    wait_media_flowing,
    wait_until,
)
from harness.people import (
    ENGINE_PAIRS,
    PASSWORD,
    WEBKIT_PAIR,
    User,
    open_room,
    people_on,
)
from harness.servers import ParleyServer


def video_playing(page: Page) -> bool:
    """The "Remote video" element is playing: time advancing, frames available."""
    return bool(
        page.evaluate(
            """() => new Promise((resolve) => {
                const v = document.querySelector('[aria-label="Remote video"]');
                const t = v.currentTime;
                setTimeout(() => resolve(!v.paused && v.readyState >= 2 && v.currentTime > t), 500);
            })"""
        )
    )


def received_audio_energy(page: Page, seconds: float = 1.0) -> float:
    """Audio energy received over `seconds` (inbound-rtp totalAudioEnergy)."""
    return float(
        page.evaluate(
            """async (ms) => {
                const energy = async () =>
                    (await window.parley.calls.stats()).audio.totalAudioEnergy;
                const before = await energy();
                await new Promise((r) => setTimeout(r, ms));
                return (await energy()) - before;
            }""",
            seconds * 1000,
        )
    )


def remote_brightness(page: Page) -> float:
    """Mean brightness (0-255) of the remote video's current frame."""
    return float(
        page.evaluate(
            """() => {
                const v = document.querySelector('[aria-label="Remote video"]');
                const c = document.createElement("canvas");
                c.width = 64; c.height = 48;
                const g = c.getContext("2d");
                g.drawImage(v, 0, 0, 64, 48);
                const d = g.getImageData(0, 0, 64, 48).data;
                let sum = 0;
                for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
                return sum / (d.length / 4);
            }"""
        )
    )


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
    for person in (alice, bob):
        assert video_playing(person.page)

    # Mute and camera off change what the other side receives.
    assert received_audio_energy(bob.page) > 0
    alice.page.get_by_role("button", name="Mute").click()
    expect(alice.page.get_by_role("button", name="Unmute")).to_be_visible()
    wait_until(lambda: received_audio_energy(bob.page) < 1e-4, "bob still hears alice muted")
    alice.page.get_by_role("button", name="Unmute").click()
    wait_until(lambda: received_audio_energy(bob.page) > 0, "bob does not hear alice unmuted")
    assert remote_brightness(alice.page) > 20
    bob.page.get_by_role("button", name="Camera off").click()
    expect(bob.page.get_by_role("button", name="Camera on")).to_be_visible()
    wait_until(lambda: remote_brightness(alice.page) < 5, "remote video did not go black")
    bob.page.get_by_role("button", name="Camera on").click()
    expect(bob.page.get_by_role("button", name="Camera off")).to_be_visible()
    wait_until(lambda: remote_brightness(alice.page) > 20, "remote video did not come back")

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


@pytest.mark.parametrize("engines", [*ENGINE_PAIRS, WEBKIT_PAIR], ids=lambda p: f"{p[0]}-{p[1]}")
def test_an_unanswered_call_times_out_as_missed(
    ringing_server: ParleyServer, browsers: Callable[[str], Browser], engines: tuple[str, str]
) -> None:
    with people_on(ringing_server, browsers, "ring") as person:
        alice, bob = person(engines[0]), person(engines[1])
        open_room(alice, bob)
        place_call(alice, bob)
        expect(status(alice.page)).to_have_text(
            "Call ended · No answer", timeout=(RING + 30) * 1000
        )
        expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
        for someone in (alice, bob):
            expect(timeline(someone, "Missed video call")).to_be_visible()


def test_calling_someone_in_a_call_gets_busy(
    pair: tuple[User, User], make_user: Callable[..., User]
) -> None:
    alice, bob = pair
    carol = make_user(bob.engine)
    carol.open_chat_with(bob)
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    expect(status(alice.page)).to_have_text("Connected")
    carol.page.get_by_role("button", name="Video call").click()
    expect(status(carol.page)).to_have_text("Call ended · Busy")
    expect(timeline(carol, "Busy · video call")).to_be_visible()
    expect(status(bob.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="End call").click()


def test_both_devices_of_the_callee_ring_and_answering_on_one_stops_the_other(
    pair: tuple[User, User], make_user: Callable[..., User], server: ParleyServer
) -> None:
    alice, bob = pair
    laptop = make_user(bob.engine, sign_up=False)
    response = laptop.context.request.post(
        "/api/login",
        data={"username": bob.username, "password": PASSWORD},
        headers={"Origin": server.url, **OWN_CONNECTION},
    )
    assert response.ok
    laptop.page.goto("/")
    laptop.page.get_by_role("link", name=alice.username).click()
    laptop.page.wait_for_function("() => window.parley.signaling.state === 'open'")
    place_call(alice, bob)
    expect(laptop.page.get_by_role("alertdialog", name="Incoming call")).to_be_visible()
    bob.page.get_by_role("button", name="Accept").click()
    expect(laptop.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
    expect(status(alice.page)).to_have_text("Connected")
    wait_media_flowing(alice, video=True)
    expect(laptop.page.get_by_role("region", name="Call")).to_be_hidden()
    alice.page.get_by_role("button", name="End call").click()


def test_calling_each_other_at_the_same_moment_ends_in_one_call(pair: tuple[User, User]) -> None:
    alice, bob = pair
    for person in (alice, bob):
        person.page.wait_for_function("() => window.parley.signaling.state === 'open'")
    # Both tap at once: neither page has seen the other's offer yet.
    alice.page.evaluate(
        "() => window.parley.calls.start({roomId: Number(location.hash.split('/').pop()),"
        " peer: window.parley.chat.rooms.find(r => '#/room/' + r.id === location.hash).peer,"
        " media: 'video'})"
    )
    bob.page.evaluate(
        "() => window.parley.calls.start({roomId: Number(location.hash.split('/').pop()),"
        " peer: window.parley.chat.rooms.find(r => '#/room/' + r.id === location.hash).peer,"
        " media: 'video'})"
    )
    incoming = [p.get_by_role("alertdialog", name="Incoming call") for p in (alice.page, bob.page)]
    wait_until(
        lambda: (
            all(
                p.evaluate("() => window.parley.calls.call?.state") == "connected"
                for p in (alice.page, bob.page)
            )
            or any(d.is_visible() for d in incoming)
        ),
        "neither connected nor ringing",
        20,
    )
    # Whoever still rings accepts; the glare rule must leave exactly one call.
    for person, dialog in zip((alice, bob), incoming, strict=True):
        if dialog.is_visible():
            person.page.get_by_role("button", name="Accept").click()
    for person in (alice, bob):
        expect(status(person.page)).to_have_text("Connected")
    ids = {p.evaluate("() => window.parley.calls.call.id") for p in (alice.page, bob.page)}
    assert len(ids) == 1
    wait_media_flowing(alice, video=True)
    alice.page.get_by_role("button", name="End call").click()
    for person in (alice, bob):
        expect(timeline(person, "Video call ·")).to_have_count(1)
        expect(timeline(person, "Cancelled video call")).to_have_count(0)


def test_a_third_users_page_receives_none_of_the_calls_signals(
    pair: tuple[User, User], make_user: Callable[..., User]
) -> None:
    alice, bob = pair
    carol = make_user(alice.engine)
    carol.open_chat_with(alice)
    carol.page.evaluate(
        """() => {
            window.seen = [];
            for (const t of ["call_offer", "call_answer", "ice_candidate", "call_description",
                             "call_end", "call_ringing", "call_cancelled"]) {
                window.parley.signaling.addEventListener(t, (e) => window.seen.push(e.detail));
            }
        }"""
    )
    place_call(alice, bob)
    bob.page.get_by_role("button", name="Accept").click()
    wait_media_flowing(alice, video=True)
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    assert carol.page.evaluate("() => window.seen") == []


def test_the_chosen_camera_and_microphone_are_used_for_the_next_call(
    make_user: Callable[..., User],
) -> None:
    alice, bob = make_user("chromium"), make_user("chromium")
    alice.page.get_by_text("Microphone and camera").click()
    camera = alice.page.get_by_role("combobox", name="Camera")
    expect(camera.locator("option")).not_to_have_count(1)  # default + at least one camera
    chosen = camera.locator("option").nth(1).get_attribute("value")
    camera.select_option(chosen)
    alice.open_chat_with(bob)
    bob.page.get_by_role("link", name=alice.username).click()
    place_call(alice, bob)
    used = alice.page.evaluate(
        "() => window.parley.calls.call.localStream.getVideoTracks()[0].getSettings().deviceId"
    )
    assert used == chosen
    alice.page.get_by_role("button", name="End call").click()
