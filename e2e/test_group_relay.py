"""A group call relayed through TURN across a network change, with a Python peer in the mesh.

Restarting coturn drops every allocation, so every pair's path is dead (as after a Wi-Fi/mobile
switch). Both browsers hear of the change and restart ICE; the Python peer (aiortc) cannot restart
ICE, so it meets each restart offer with an offer from a new connection, which the browser takes in
place of its own. Sound and pictures come back every way.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from backend.turnserver import LocalTurn
from harness import aio
from harness.calls import switch_network
from harness.groupcalls import call_and_accept, screen, wait_media_from_names
from harness.grouppeers import ENV, join_command, make_group, stats_of, stopped, wait_frames_from
from harness.people import User
from harness.servers import ROOT, ParleyServer

pytestmark = pytest.mark.timeout(900)
BACK_WITHIN_S = 120  # a bound for a slow machine, not a target: the paths come back in seconds


def test_a_relayed_group_call_with_a_python_peer_comes_back_after_a_network_change(
    coturn: LocalTurn, relay_server: ParleyServer, relay_user: Callable[[str], User]
) -> None:
    alice, bob = relay_user("chromium"), relay_user("firefox")
    bot = f"py{secrets.token_hex(3)}"
    room_id = aio.run(make_group(relay_server, [alice.username, bob.username, bot]))
    peer = subprocess.Popen(
        join_command(relay_server, bot, room_id, "--wait", "180", "--seconds", "600"),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    people = {alice.username, bob.username, bot}
    try:
        call_and_accept(alice, bob, room_id)
        for user in (alice, bob):
            wait_media_from_names(user, people - {user.username})
        wait_frames_from(peer, people - {bot})

        coturn.restart()  # every relayed path is dead from here on; ICE has not noticed yet
        for user in (alice, bob):
            switch_network(user, "online")

        for user in (alice, bob):
            wait_media_from_names(user, people - {user.username}, BACK_WITHIN_S)
        wait_frames_from(peer, people - {bot}, BACK_WITHIN_S)
        for user in (alice, bob):
            expect(screen(user.page).get_by_role("status")).to_have_text("Connected")
    finally:
        out, err, code = stopped(peer)
        print(bot, err.decode()[-6000:])  # shown when the test fails
    assert stats_of(out, err, code)["joined"]
