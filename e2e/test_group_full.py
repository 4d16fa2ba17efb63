"""A member who taps Join call on a full group call is told so and stays out; the call goes on.

The server here allows two per call (GROUP_CALL_MAX=2), so two browsers fill it: the same refusal
a fifth member meets at the default of four (tests/test_peer_group.py refuses a fifth Python peer
in a call of four), without four media pipelines on a two-core machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from harness.groupcalls import in_call, make_group, open_group, screen, wait_media_from
from harness.people import SCREENSHOTS, User
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.viewports import phone

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("groupfull")
    with parley_server(root, make_test_certs(root / "certs"), GROUP_CALL_MAX="2") as running:
        yield running


def test_join_call_on_a_full_call_says_it_is_full_and_the_call_goes_on(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    alice, bob = make_user("chromium"), make_user("firefox")
    carol = make_user("chromium", **phone("chromium"))
    room, _ = make_group(alice, [bob, carol], server)
    for user in (alice, bob, carol):
        open_group(user, room)
    alice.page.get_by_role("button", name="Video call").click()
    bob.page.get_by_role("alertdialog", name="Incoming call").get_by_role(
        "button", name="Accept"
    ).click()
    # carol says no to the ring, then changes her mind once the call is full.
    carol.page.get_by_role("alertdialog", name="Incoming call").get_by_role(
        "button", name="Decline"
    ).click()
    in_call([alice, bob])

    carol.page.evaluate(
        """() => window.parley.groups.addEventListener("ended", (e) => {
            window.endedCall = e.detail.call;
        })"""
    )
    join = carol.page.get_by_role("button", name="Join call", exact=True)
    join.click()
    expect(
        carol.page.get_by_role("alert").filter(has_text="This call is full").first
    ).to_be_visible(timeout=30_000)
    expect(screen(carol.page)).to_be_hidden()
    SCREENSHOTS.mkdir(exist_ok=True)
    carol.page.screenshot(path=str(SCREENSHOTS / "group-call-full-phone.png"))
    expect(join).to_be_visible()
    # Her camera and microphone, taken to join, are let go.
    carol.page.wait_for_function(
        """() => {
            const call = window.endedCall;
            return call && call.endReason === "full" && call.localStream
                && call.localStream.getTracks().every((track) => track.readyState === "ended");
        }"""
    )
    for user, other in ((alice, bob), (bob, alice)):
        expect(screen(user.page).get_by_label(f"Video of {carol.username}")).to_have_count(0)
        wait_media_from(user, [other])

    # alice leaves: a call of one is over; Join call goes from carol's room.
    screen(alice.page).get_by_role("button", name="Leave call").click()
    for user in (alice, bob):
        expect(screen(user.page)).to_be_hidden(timeout=30_000)
    expect(join).to_have_count(0, timeout=30_000)
