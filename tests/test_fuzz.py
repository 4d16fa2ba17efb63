"""Hypothesis throws 10,000+ malformed, mistyped and out-of-order frames at a live server.

The server must answer each with an error (or the normal reply), never crash, never deliver a
frame to anyone else, and a call between two other people must carry on through all of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import FAKE_SDP, Frame, Person, Sock, call_id

FRAMES_PER_EXAMPLE = 20
EXAMPLES = 520
REPLIES = {"error", "pong", "call_end", "chat_ack"}
CHECKPOINTS = 20  # times during the blast the fuzzer waits to see the call carry on


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("fuzz")
    # The fuzzer sends far faster than any client may; the rate limit has its own test.
    with parley_server(
        root, make_test_certs(root / "certs"), WS_MESSAGE_RATE="1000000", WS_MESSAGE_BURST="1000000"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def live_call(server: ParleyServer) -> Iterator[tuple[Person, Person, Sock, Sock, str, int]]:
    alice, bob = Person(server, "fz_alice"), Person(server, "fz_bob")
    room = alice.open_room(bob)
    a, b = alice.connect(), bob.connect()
    cid = call_id()
    a.send(
        {
            "type": "call_offer",
            "call_id": cid,
            "room_id": room,
            "to": bob.id,
            "media": "video",
            "sdp": FAKE_SDP,
        }
    )
    b.expect("call_offer")
    b.send({"type": "call_answer", "call_id": cid, "sdp": FAKE_SDP})
    a.expect("call_answer")
    yield alice, bob, a, b, cid, room
    alice.close()
    bob.close()


def relay(sender: Sock, receiver: Sock, who: Person, frame: Frame) -> None:
    """Send a call signal; the very next frame the receiver gets must be it, from `who`."""
    sender.send(frame)
    got = receiver.recv(timeout=30)
    assert got == {**frame, "from": {"id": who.id, "username": who.username}}, got


class CallChatter(threading.Thread):
    """Alice and bob trade candidates and descriptions over their call until told to stop.

    Reading both sockets all the time also answers the server's pings: a socket nobody reads
    through a long blast on a slow machine is closed as dead. Every frame either of them gets
    must be exactly the signal the other just sent, so nothing from the fuzzer reaches them.
    """

    def __init__(self, alice: Person, bob: Person, a: Sock, b: Sock, cid: str) -> None:
        super().__init__(name="call-chatter", daemon=True)
        self.alice, self.bob, self.a, self.b, self.cid = alice, bob, a, b, cid
        self.stop = threading.Event()
        self.exchanged = 0
        self.error: BaseException | None = None
        self._progress = threading.Condition()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self._exchange(self.exchanged)
                with self._progress:
                    self.exchanged += 1
                    self._progress.notify_all()
                self.stop.wait(0.02)
        except BaseException as failure:
            with self._progress:
                self.error = failure
                self._progress.notify_all()

    def _exchange(self, n: int) -> None:
        """Send one candidate alice -> bob and one description bob -> alice; check both arrive."""
        candidate = {
            "candidate": f"candidate:{n} 1 udp 2122260223 127.0.0.1 {10_000 + n % 50_000} typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "fz",
        }
        ice = {"type": "ice_candidate", "call_id": self.cid, "candidate": candidate}
        relay(self.a, self.b, self.alice, ice)
        description = {"type": "offer", "sdp": FAKE_SDP.replace("o=- 1 2", f"o=- 1 {n + 2}")}
        renegotiation = {
            "type": "call_description",
            "call_id": self.cid,
            "description": description,
            "restart": False,  # the server always relays the flag (docs/protocol.md)
        }
        relay(self.b, self.a, self.bob, renegotiation)

    def carries_on(self, timeout: float = 60) -> None:
        """Wait until one more exchange completes; raise what stopped the chatter, if anything."""
        with self._progress:
            start = self.exchanged
            self._progress.wait_for(lambda: self.error or self.exchanged > start, timeout)
            if self.error is not None:
                raise AssertionError(f"the call stopped carrying signals: {self.error!r}")
            assert self.exchanged > start, f"no call signal got through in {timeout}s"

    def finish(self) -> None:
        """Stop after the exchange under way; raise what went wrong, if anything."""
        self.stop.set()
        self.join(timeout=120)
        assert not self.is_alive(), "the chatter is stuck"
        if self.error is not None:
            raise AssertionError(f"the call stopped carrying signals: {self.error!r}")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=50)
    # Lone surrogates: json.dumps writes them as "\udxxx" escapes, legal JSON but not Unicode.
    | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=15,
)


def frame_strategy(
    call_ids: list[str], user_ids: list[int], rooms: list[int]
) -> st.SearchStrategy[str]:
    kinds = st.sampled_from(
        [
            "ping",
            "chat_message",
            "call_offer",
            "call_answer",
            "ice_candidate",
            "call_description",
            "call_rejected",
            "call_end",
            "call_resume",
            "presence",
            "welcome",
            "",
            "PING",
        ]
    )
    plausible = st.fixed_dictionaries(
        {"type": kinds},
        optional={
            "call_id": st.sampled_from(call_ids) | st.uuids().map(str) | values,
            "room_id": st.sampled_from(rooms) | values,
            "to": st.sampled_from(user_ids) | values,
            "media": st.sampled_from(["audio", "video", "screen"]) | values,
            "sdp": st.text(max_size=300) | values,
            "candidate": st.fixed_dictionaries({"candidate": st.text(max_size=80)}) | values,
            "description": st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["offer", "answer", "rollback"]),
                    "sdp": st.text(max_size=50),
                }
            )
            | values,
            "reason": st.sampled_from(["declined", "busy", "timeout", "bored"]) | values,
            "text": st.text(max_size=100) | values,
            "client_id": st.text(max_size=70) | values,
            "from": st.fixed_dictionaries({"id": st.sampled_from(user_ids)}),
            "t": values,
        },
    ).map(json.dumps)
    truncated = plausible.flatmap(
        lambda text: st.integers(0, max(0, len(text) - 1)).map(lambda n: text[:n])
    )
    garbage = st.text(max_size=200) | values.map(json.dumps)
    return st.one_of(plausible, plausible, truncated, garbage)


# Ten thousand frames take minutes on a slow machine; past the suite's timeout the timeout's
# failure would be shrunk by Hypothesis like a bug.
@pytest.mark.timeout(900)
def test_ten_thousand_bad_frames_get_errors_and_leave_a_call_between_others_alone(
    server: ParleyServer, live_call: tuple[Person, Person, Sock, Sock, str, int]
) -> None:
    alice, bob, a, b, cid, room = live_call
    mallory = Person(server, "fz_mallory")
    fuzz = mallory.connect()
    chatter = CallChatter(alice, bob, a, b, cid)
    sent = examples = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(
            frame_strategy([cid], [alice.id, bob.id, mallory.id], [room]),
            min_size=FRAMES_PER_EXAMPLE,
            max_size=FRAMES_PER_EXAMPLE,
        )
    )
    def blast(frames: list[str]) -> None:
        nonlocal sent, examples
        for text in frames:
            fuzz.send(text)
        for _ in frames:
            reply = fuzz.recv(timeout=30)
            assert reply["type"] in REPLIES, reply
            if reply["type"] == "error":
                assert reply["reason"] != "internal", reply
        sent += len(frames)
        examples += 1
        if examples % (EXAMPLES // CHECKPOINTS) == 0:
            chatter.carries_on()  # the call's signals keep flowing in the thick of it

    chatter.start()
    try:
        chatter.carries_on()
        blast()
        assert sent >= 10_000
        chatter.carries_on()
        chatter.finish()
        assert chatter.exchanged > CHECKPOINTS
        # After it all the call still carries signals both ways (the very next frame each
        # gets is the other's) and ends as a hang-up.
        relay(a, b, alice, {"type": "ice_candidate", "call_id": cid, "candidate": None})
        b.send({"type": "call_end", "call_id": cid})
        ended = a.recv(timeout=30)
        assert (ended["type"], ended["call_id"], ended["reason"]) == ("call_end", cid, "hangup")
        # And the server is still there for everyone.
        fuzz.send({"type": "ping", "t": 1})
        assert fuzz.expect("pong")["t"] == 1
    finally:
        chatter.stop.set()
        mallory.close()
