"""A socket whose client stops reading, on a real gunicorn gevent worker, over TLS and plain TCP.

Frames for a socket are queued and written by the event loop (plain TCP, behind the reverse
proxy) or by a writer greenlet (TLS), never by the sender's greenlet: so a peer that stops
reading cannot stall the socket that sends to it, and once MAX_UNSENT bytes wait for it, it is
cut off (its client reconnects and resumes).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.signaling.socket import MAX_UNSENT
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import Person, Sock, answered_call, username

# The description alice sends again and again: near the largest SDP a frame may carry.
SDP = "v=0\r\n" + "a=x-filler:" + "x" * 30_000 + "\r\n"
# The client's receive buffer, set before it connects (else Linux grows it to tcp_rmem's
# maximum, 32 MB here): what bob's socket holds besides the server's send buffer (at most
# tcp_wmem's 4 MB) and Parley's queue.
BOB_RCVBUF = 64 * 1024
SEND_BYTES = 6 * MAX_UNSENT  # well past both buffers and the queue


@pytest.fixture(params=["tls", "plain"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ParleyServer]:
    plain = request.param == "plain"
    certs = make_test_certs(tmp_path / "certs")
    with parley_server(
        tmp_path,
        certs,
        PARLEY_TLS="0" if plain else "1",
        SESSION_COOKIE_SECURE="0" if plain else "1",
        WS_MESSAGE_RATE="100000",  # alice sends far faster than any client may
        WS_MESSAGE_BURST="100000",
    ) as running:
        yield running


def pong(sock: Sock, token: str) -> None:
    """Ping the server over `sock` and wait for its pong.

    Bounded, so that a stall fails: under 50 s, two of the server's 25 s ping rounds, after
    which its pinger would cut a silent peer off and so free a stalled sender anyway.
    """
    sock.send({"type": "ping", "t": token})
    sock.expect("pong", timeout=20, where=lambda f: f.get("t") == token)


def test_a_peer_that_stops_reading_never_holds_up_the_sender_and_is_cut_off(
    server: ParleyServer,
) -> None:
    alice, bob = Person(server, username("alice")), Person(server, username("bob"))
    try:
        room = alice.open_room(bob)
        a = alice.connect()
        b = bob.connect(sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, BOB_RCVBUF),))
        call = answered_call(a, b, room, bob)
        # From here bob reads nothing, while alice sends descriptions for him.
        frame = {
            "type": "call_description",
            "call_id": call,
            "description": {"type": "offer", "sdp": SDP},
        }
        sent = 0
        rounds = 0
        while sent < SEND_BYTES:
            for _ in range(50):
                a.send(frame)
                sent += len(SDP)
            rounds += 1
            # Alice's own socket answers at once: her frames are never stuck behind bob's.
            # (Before the queue, her read loop waited in a write to bob: no pong came.)
            pong(a, f"r{rounds}")
        # Bob's socket was cut off once the queue for him passed MAX_UNSENT: what the buffers
        # held reaches him, then the connection ends (no close frame fits behind a full buffer).
        assert b.closed_with(timeout=60) is None
        pong(a, "after")  # and alice's socket carries on
    finally:
        alice.close()
        bob.close()
