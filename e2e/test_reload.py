"""A call survives a reload of either page, and the quality readout never hides missing media."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from harness.calls import connected_call, status, timeline, wait_media_flowing, wait_until
from harness.people import SCREENSHOTS, User
from harness.viewports import PHONE

# Makes the first getUserMedia after a reload (a call id in this tab's sessionStorage) refuse, as
# a browser does when the camera needs a tap again.
REFUSE_MEDIA_ONCE_AFTER_RELOAD = """
if (sessionStorage.getItem("parley.call") && !sessionStorage.getItem("refused")) {
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    if (sessionStorage.getItem("refused")) return real(constraints);
    sessionStorage.setItem("refused", "1");
    return Promise.reject(new DOMException("Permission needs a tap", "NotAllowedError"));
  };
}
"""


def reload_and_time_media(user: User) -> float:
    """Reload the page; return the seconds from its load to remote video frames decoding again."""
    user.page.reload()
    loaded = time.monotonic()
    wait_remote_video(user)
    return time.monotonic() - loaded


def wait_remote_video(user: User) -> None:
    """Wait until the page's peer connection is connected and decodes remote video frames."""
    wait_until(
        lambda: bool(
            user.page.evaluate(
                """async () => {
                    const s = window.parley.calls && await window.parley.calls.stats();
                    const connected = s && s.connectionState === "connected";
                    return Boolean(connected && s.video.framesDecoded > 0);
                }"""
            )
        ),
        f"{user.engine} {user.username}: no remote video after the reload",
        seconds=30,
    )


def call_records(page: Page) -> list[dict]:  # type: ignore[type-arg]
    return page.evaluate(
        """async () => {
            const room = location.hash.split("/").pop();
            const body = await (await fetch(`/api/rooms/${room}/messages?limit=500`)).json();
            return body.messages.filter((m) => m.kind === "call").map((m) => m.call);
        }"""
    )


def hang_up_and_check_one_record(alice: User, bob: User) -> None:
    alice.page.get_by_role("button", name="End call").click()
    expect(status(bob.page)).to_contain_text("Call ended")
    for person in (alice, bob):
        expect(timeline(person, "Video call ·")).to_have_count(1)
    records = call_records(alice.page)
    assert len(records) == 1, records
    assert records[0]["outcome"] == "completed", records


@pytest.mark.parametrize(
    ("engines", "reloader"),
    [
        (("chromium", "chromium"), "caller"),
        (("chromium", "chromium"), "callee"),
        (("firefox", "firefox"), "caller"),
        (("firefox", "firefox"), "callee"),
        (("chromium", "firefox"), "callee"),
        (("firefox", "chromium"), "callee"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v,
)
def test_a_call_survives_a_reload_and_stays_one_call(
    make_user: Callable[..., User], engines: tuple[str, str], reloader: str
) -> None:
    alice, bob = connected_call(make_user, engines)
    wait_media_flowing(bob, video=True)
    who = alice if reloader == "caller" else bob
    seconds = reload_and_time_media(who)
    print(f"rejoin {engines[0]}-{engines[1]} {reloader} reloaded: media after {seconds:.2f} s")
    for person in (alice, bob):
        wait_media_flowing(person, video=True)
        expect(status(person.page)).to_have_text("Connected")
    expect(who.page.get_by_role("button", name="Rejoin call")).to_be_hidden()
    hang_up_and_check_one_record(alice, bob)


def test_the_quality_readout_says_no_media_when_none_arrives(
    make_user: Callable[..., User],
) -> None:
    alice, bob = connected_call(make_user, ("chromium", "chromium"))
    wait_media_flowing(bob, video=True)
    quality = bob.page.locator("#call-quality")
    expect(quality).to_contain_text("Quality:")
    alice.page.evaluate(
        """() => Promise.all(
            window.parley.calls.call.other.pc.getSenders().map((s) => s.replaceTrack(null))
        )"""
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "No media" not in seen:
        seen.add(quality.inner_text())
        time.sleep(0.2)
    assert "No media" in seen, seen
    # "· 0 kbit/s" exactly: a real bitrate such as "1230 kbit/s" ends in "0 kbit/s" too.
    assert not [text for text in seen if re.search(r"good.* · 0 kbit/s", text)], seen
    expect(quality).to_have_text("No media")


def test_a_reload_that_cannot_get_media_offers_rejoin_call(
    make_user: Callable[..., User],
) -> None:
    on_phone = iter([{}, PHONE])  # bob, who reloads, is on a phone
    alice, bob = connected_call(
        lambda engine: make_user(engine, **next(on_phone)), ("chromium", "chromium")
    )
    bob.context.add_init_script(REFUSE_MEDIA_ONCE_AFTER_RELOAD)
    bob.page.reload()
    rejoin = bob.page.get_by_role("button", name="Rejoin call")
    expect(rejoin).to_be_visible()
    expect(status(bob.page)).to_have_text("Reconnecting…")
    expect(bob.page.get_by_text("Tap Rejoin call to continue")).to_be_visible()
    expect(bob.page.get_by_label("Call duration")).not_to_have_text("0:00")  # the call goes on
    bob.page.screenshot(path=SCREENSHOTS / "call-rejoin-phone.png")
    rejoin.click()
    expect(rejoin).to_be_hidden()
    for person in (alice, bob):
        wait_media_flowing(person, video=True)
        expect(status(person.page)).to_have_text("Connected")
    hang_up_and_check_one_record(alice, bob)


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_a_call_to_the_python_peer_survives_a_reload(
    echo_bot: subprocess.Popen[bytes], make_user: Callable[..., User], engine: str
) -> None:
    me = make_user(engine)
    me.page.get_by_role("link", name="Echo test").click()
    me.page.get_by_role("button", name="Video call").click()
    expect(status(me.page)).to_have_text("Connected", timeout=30_000)
    wait_media_flowing(me, video=True, seconds=40)
    seconds = reload_and_time_media(me)
    print(f"rejoin {engine} with the echo bot: media after {seconds:.2f} s")
    wait_media_flowing(me, video=True, seconds=40)  # its own picture and sound, echoed again
    expect(status(me.page)).to_have_text("Connected")
    me.page.get_by_role("button", name="End call").click()
    expect(timeline(me, "Video call ·")).to_have_count(1)
    assert echo_bot.poll() is None


@pytest.mark.parametrize(
    ("engines", "waiter"),
    [
        (("chromium", "chromium"), "callee"),
        (("chromium", "chromium"), "caller"),
        (("chromium", "firefox"), "callee"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v,
)
def test_both_reload_while_one_waits_on_rejoin_call(
    make_user: Callable[..., User], engines: tuple[str, str], waiter: str
) -> None:
    """One page waits on Rejoin call when the other reloads too: a tap brings media back to both.

    The other page's restart offer reaches the waiting page before the tap (the case that stalled
    when the waiting page was the polite callee: it dropped the offer, and the caller ignored the
    callee's own restart offer while waiting for an answer to its own).
    """
    alice, bob = connected_call(make_user, engines)
    wait_media_flowing(bob, video=True)
    tapper, other = (bob, alice) if waiter == "callee" else (alice, bob)
    tapper.context.add_init_script(REFUSE_MEDIA_ONCE_AFTER_RELOAD)
    tapper.page.reload()
    rejoin = tapper.page.get_by_role("button", name="Rejoin call")
    expect(rejoin).to_be_visible()
    tapper.page.evaluate(
        """() => {
            window.restartOffers = 0;
            window.parley.signaling.addEventListener("call_description", (e) => {
                if (e.detail.restart) window.restartOffers += 1;
            });
        }"""
    )
    other.page.reload()
    expect(status(other.page)).to_have_text("Reconnecting…")
    tapper.page.wait_for_function("() => window.restartOffers > 0", timeout=30_000)
    rejoin.click()
    tapped = time.monotonic()
    expect(rejoin).to_be_hidden()
    for person in (alice, bob):
        wait_remote_video(person)
    seconds = time.monotonic() - tapped
    print(f"both reloaded, the {waiter} tapped Rejoin call: video after {seconds:.2f} s")
    for person in (alice, bob):
        wait_media_flowing(person, video=True)
        expect(status(person.page)).to_have_text("Connected")
    hang_up_and_check_one_record(alice, bob)
