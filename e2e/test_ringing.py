"""Audible ringing: ringback for the caller, a ringtone for the callee, and every way it stops.

What comes out is measured, not assumed: ringer.js sends its tones through an AnalyserNode on the
way to the speaker, and the page reports the loudest frequency there (window.parley.ringer.peak()).
Firefox runs Web Audio only with an audio device: it gets a PulseAudio null speaker of the test's
(the speaker fixture). Chromium needs none, and its default autoplay policy keeps audio suspended
until the page's first tap (no launch flag changes that in harness/browsers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect

from harness.browsers import OWN_CONNECTION, close_surely, new_context
from harness.calls import RING, place_call, status, wait_until
from harness.people import PASSWORD, User, new_person, open_room, people_on
from harness.servers import ParleyServer
from harness.sound import firefox_on, pulse_speakers

# The engines that can ring here (WebKitGTK cannot call); Firefox takes the call from Chromium.
PAIRS = [("chromium", "chromium"), ("chromium", "firefox")]
TONES = {"ringback": (440, 480), "ringtone": (660, 880)}  # PATTERNS in pwa/js/ringer.js


def ringer(page: Page) -> dict[str, Any]:
    """The page's ringer: what rings, whether it can be heard, and the loudest sound coming out."""
    return page.evaluate("() => ({...window.parley.ringer.state, ...window.parley.ringer.peak()})")


def sounding(page: Page, kind: str) -> bool:
    """The ringer plays `kind` and its loudest output is one of that tone's frequencies."""
    now = ringer(page)
    near = any(abs(now["hz"] - hz) <= 15 for hz in TONES[kind])
    return now["kind"] == kind and now["audible"] and near and now["db"] > -70


def waiting_on(user: User, check: Callable[[], bool], why: str) -> None:
    """Wait until `check` holds; on failure say what the user's ringer was doing then."""
    try:
        wait_until(check, why)
    except AssertionError as error:
        raise AssertionError(f"{why} ({user.engine}): {ringer(user.page)}") from error


def hear(user: User, kind: str) -> None:
    """Wait until `kind` really comes out of the user's page (a tone is on 2 s in 6 at least)."""
    waiting_on(user, lambda: sounding(user.page, kind), f"no {kind} to be heard")


def silent(*users: User) -> None:
    """Wait until each user's ringer has stopped and nothing comes out of it."""
    for user in users:
        waiting_on(
            user,
            lambda: (r := ringer(user.page))["kind"] is None and r["db"] < -90,  # noqa: B023
            "still ringing",
        )


def ringing_pair(person: Callable[[str], User], engines: tuple[str, str]) -> tuple[User, User]:
    """alice (caller) and bob in their room, both having tapped; alice rings bob, both hear it."""
    alice, bob = person(engines[0]), person(engines[1])
    open_room(alice, bob)  # clicks on both pages: the tap browsers want before audio
    place_call(alice, bob)
    hear(alice, "ringback")
    hear(bob, "ringtone")
    return alice, bob


@pytest.fixture(scope="module")
def speaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PulseAudio server of the test's with one speaker that plays into nothing; its address."""
    with pulse_speakers(tmp_path_factory.mktemp("ringing-sound"), "speaker") as address:
        yield address


@pytest.fixture(scope="module")
def with_speaker(
    playwright: Playwright, browsers: Callable[[str], Browser], speaker: str
) -> Iterator[Callable[[str], Browser]]:
    """Browsers that can play sound: Chromium as the suite has it, Firefox given the speaker."""
    firefox = firefox_on(playwright, speaker)
    yield lambda engine: firefox if engine == "firefox" else browsers(engine)
    close_surely(firefox)


pairs = pytest.mark.parametrize("engines", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")


@pytest.fixture(params=PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def ringing(
    request: pytest.FixtureRequest, server: ParleyServer, with_speaker: Callable[[str], Browser]
) -> Iterator[tuple[User, User]]:
    """alice ringing bob, both hearing it, in each pair of engines."""
    with people_on(server, with_speaker, "ring") as person:
        yield ringing_pair(person, request.param)


def test_both_hear_ringing_until_the_callee_answers(ringing: tuple[User, User]) -> None:
    alice, bob = ringing
    bob.page.get_by_role("button", name="Accept").click()
    silent(bob, alice)
    expect(status(alice.page)).to_have_text("Connected")
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    for someone in (alice, bob):
        assert ringer(someone.page)["kind"] is None


@pytest.mark.parametrize("who", ["callee declines", "caller cancels"])
def test_declining_or_cancelling_stops_both(ringing: tuple[User, User], who: str) -> None:
    alice, bob = ringing
    if who == "callee declines":
        bob.page.get_by_role("button", name="Decline").click()
    else:
        alice.page.get_by_role("button", name="End call").click()
    silent(alice, bob)
    expect(bob.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
    expect(status(alice.page)).to_contain_text("Call ended")


@pairs
def test_an_unanswered_call_stops_ringing_when_it_times_out(
    ringing_server: ParleyServer, with_speaker: Callable[[str], Browser], engines: tuple[str, str]
) -> None:
    with people_on(ringing_server, with_speaker, "rr") as person:
        alice, bob = ringing_pair(person, engines)
        expect(status(alice.page)).to_have_text(
            "Call ended · No answer", timeout=(RING + 30) * 1000
        )
        silent(alice, bob)


@pairs
def test_answering_on_one_device_stops_the_other_ringing(
    server: ParleyServer, with_speaker: Callable[[str], Browser], engines: tuple[str, str]
) -> None:
    with people_on(server, with_speaker, "ring") as person:
        alice, bob = person(engines[0]), person(engines[1])
        open_room(alice, bob)
        laptop = new_context(with_speaker(bob.engine), bob.engine, base_url=server.url)
        try:
            signed_in = laptop.request.post(
                "/api/login",
                data={"username": bob.username, "password": PASSWORD},
                headers={"Origin": server.url, **OWN_CONNECTION},
            )
            assert signed_in.ok
            other = User(bob.username, bob.engine, laptop, laptop.new_page())
            other.page.goto("/")
            other.page.get_by_role("link", name=alice.username).click()  # its tap
            other.page.wait_for_function("() => window.parley.signaling.state === 'open'")
            place_call(alice, bob)
            hear(other, "ringtone")
            hear(bob, "ringtone")
            bob.page.get_by_role("button", name="Accept").click()
            expect(other.page.get_by_role("alertdialog", name="Incoming call")).to_be_hidden()
            silent(other, alice)
            alice.page.get_by_role("button", name="End call").click()
        finally:
            close_surely(laptop)


def untouched_page(browser: Browser, engine: str, server: ParleyServer, username: str) -> Page:
    """A signed-in page nobody has tapped, and that Playwright has not touched either.

    Playwright's own reads of a page (evaluate, expect, waits) count as user activation in
    Chromium, so the page is only navigated to and watched through the DevTools protocol.
    """
    context = new_context(browser, engine, base_url=server.url)
    signed_up = context.request.post(
        "/api/register",
        data={"username": username, "password": PASSWORD},
        headers={"Origin": server.url, **OWN_CONNECTION},
    )
    assert signed_up.status == 201, signed_up.text()
    return context.new_page()


def look(page: Page, expression: str) -> Any:
    """Evaluate `expression` in the page without lending it a user gesture (Chromium only)."""
    session = page.context.new_cdp_session(page)
    try:
        answer = session.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return answer["result"].get("value")
    finally:
        session.detach()


def failure(message: ConsoleMessage) -> bool:
    """An error in the console, other than the service worker the test's certificate keeps out.

    Chromium registers no service worker behind a certificate it does not trust (the suite's
    browsers are not launched with --ignore-certificate-errors); that is not the ringer's.
    """
    return message.type == "error" and "error occurred when fetching the script" not in message.text


def errors_of(page: Page) -> list[str]:
    """Return a list that fills with the page's uncaught errors and console errors from now on."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on("console", lambda m: problems.append(m.text) if failure(m) else None)
    return problems


def test_before_any_tap_chromium_rings_silently_without_errors_and_a_tap_lets_it_sound(
    make_user: Callable[..., User], browsers: Callable[[str], Browser], server: ParleyServer
) -> None:
    alice = make_user("chromium")
    page = untouched_page(browsers("chromium"), "chromium", server, f"{alice.username}tapless")
    try:
        problems = errors_of(page)
        page.goto("/")
        wait_until(lambda: look(page, "window.parley.signaling?.state === 'open'"), "no socket", 30)
        alice.open_chat_with(User(f"{alice.username}tapless", "chromium", page.context, page))
        alice.page.get_by_role("button", name="Video call").click()
        expect(status(alice.page)).to_have_text("Ringing…")
        wait_until(
            lambda: look(page, "!document.getElementById('incoming').hidden"), "no dialog", 30
        )
        state = look(
            page,
            "({...window.parley.ringer.state, tapped: navigator.userActivation.hasBeenActive})",
        )
        # The dialog is the alert; the ringtone waits for a tap, held by the browser not failing.
        assert state["kind"] == "ringtone" and state["blocked"] and not state["tapped"], state
        assert state["context"] == "suspended" and not state["vibrating"], state
        dialog = page.get_by_role("alertdialog", name="Incoming call")
        expect(dialog).to_contain_text(f"{alice.username} is calling")
        dialog.get_by_role("heading", name="Incoming call").click()  # a tap anywhere
        bob = User(f"{alice.username}tapless", "chromium", page.context, page)
        hear(bob, "ringtone")
        page.get_by_role("button", name="Decline").click()
        silent(bob, alice)
        assert problems == []
    finally:
        close_surely(page.context)


def test_firefox_without_a_speaker_still_shows_the_call_without_errors(
    make_user: Callable[..., User], browsers: Callable[[str], Browser], server: ParleyServer
) -> None:
    alice = make_user("chromium")
    # The suite's Firefox has no audio device: Web Audio never starts, the blocked case for good.
    bob = new_person(browsers("firefox"), "firefox", server, f"{alice.username}mute")
    try:
        problems = errors_of(bob.page)
        alice.open_chat_with(bob)
        place_call(alice, bob)  # the dialog shows: the visual alert
        waiting_on(bob, lambda: ringer(bob.page)["kind"] == "ringtone", "no ringtone started")
        bob.page.get_by_role("heading", name="Incoming call").click()
        state = ringer(bob.page)
        assert state["blocked"] and state["db"] == float("-inf"), state
        bob.page.get_by_role("button", name="Decline").click()
        silent(bob)
        assert problems == []
    finally:
        close_surely(bob.context)
