"""A group call across a server restart: the media never stops and the new server takes it back."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from harness.calls import timeline
from harness.groupcalls import (
    hang_up,
    in_call,
    make_group,
    open_group,
    screen,
    start_and_answer,
    wait_media_from,
)
from harness.people import User
from harness.servers import ParleyServer

# Three browsers in a mesh and a server stopped and started under them, on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)
# The new server takes the calls over only if it starts within handover.HANDOVER_WINDOW (120 s)
# of the old one stopping: the checks while it is away keep well inside that.
AWAY_SECONDS = 25


def test_a_group_call_survives_a_server_restart_and_the_new_server_takes_it_back(
    make_user: Callable[..., User], server: ParleyServer
) -> None:
    alice, bob, carol = make_user("chromium"), make_user("firefox"), make_user("chromium")
    people = [alice, bob, carol]
    room, name = make_group(alice, [bob, carol], server)
    for person in people:
        open_group(person, room)
    start_and_answer(alice, [bob, carol], name)
    in_call(people)

    server.stop()
    try:
        # The media never went through the server: while it is away every pair keeps its picture
        # and sound, and each screen says the call is up and only the server is being reached.
        for user in people:
            expect(screen(user.page).get_by_role("status")).to_have_text(
                "Connected · reconnecting to the server…", timeout=30_000
            )
        for user in people:
            wait_media_from(user, [p for p in people if p is not user], AWAY_SECONDS)
    finally:
        server.start()  # the session's server, whatever happened while it was away

    # Each page resumes the call on the new server: connected again, every tile moving, no error.
    # (A page may wait out a 15 s reconnect backoff, inside the server's 45 s grace period.)
    in_call(people)
    for user in people:
        expect(screen(user.page).get_by_role("status")).to_have_text("Connected", timeout=60_000)
        expect(user.page.get_by_role("alert").filter(has_text=re.compile(r"\S"))).to_have_count(0)

    # bob leaves: the new server tells alice and carol, who carry on without his tile.
    screen(bob.page).get_by_role("button", name="Leave call").click()
    expect(screen(bob.page)).to_be_hidden()
    for user in (alice, carol):
        expect(screen(user.page).get_by_label(f"Video of {bob.username}")).to_have_count(
            0, timeout=30_000
        )
        expect(screen(user.page).get_by_role("status")).to_have_text("Connected")
    wait_media_from(alice, [carol])
    wait_media_from(carol, [alice])
    hang_up([alice, carol])
    # One record of the call, written by the new server, with everyone who was in it.
    for user in people:
        expect(timeline(user, "Group video call ·")).to_contain_text("· 3 people")
