"""The call registry in memory: who may signal what, timeouts, grace periods and records."""

from __future__ import annotations

import logging
import uuid

import pytest

from backend.signaling.hub import Hub
from backend.signaling.protocol import parse
from backend.signaling.registry import CallRegistry
from harness.fakes import FakeSocket, HandScheduler, MemoryStore

ALICE, BOB, CAROL, MALLORY = 1, 2, 3, 4
ROOM_AB, ROOM_CB = 10, 11
RING, GRACE = 30.0, 15.0


class World:
    def __init__(self) -> None:
        self.store = MemoryStore(
            {ALICE: "alice", BOB: "bob", CAROL: "carol", MALLORY: "mallory"},
            {ROOM_AB: (ALICE, BOB), ROOM_CB: (CAROL, BOB)},
        )
        peers = {ALICE: {BOB}, BOB: {ALICE, CAROL}, CAROL: {BOB}, MALLORY: set()}
        self.hub = Hub(lambda u: peers[u])
        self.clock = HandScheduler()
        self.pushes: list[tuple[int, dict]] = []  # type: ignore[type-arg]
        self.calls = CallRegistry(
            self.hub,
            self.store,
            self.clock,
            ring_timeout=RING,
            grace_period=GRACE,
            ring_offline=lambda user, push: self.pushes.append(
                (user, push.model_dump(by_alias=True))
            ),
        )

    def socket(self, user_id: int) -> FakeSocket:
        sock = FakeSocket(user_id)
        self.hub.add(sock)
        self.calls.socket_opened(sock)
        return sock

    def drop(self, sock: FakeSocket) -> None:
        self.hub.remove(sock)
        self.calls.socket_closed(sock)

    def send(self, sock: FakeSocket, frame: dict) -> None:  # type: ignore[type-arg]
        import json

        self.calls.handle(sock, parse(json.dumps(frame)))  # type: ignore[arg-type]

    def offer(self, sock: FakeSocket, to: int = BOB, room: int = ROOM_AB) -> str:
        cid = str(uuid.uuid4())
        self.send(
            sock,
            {
                "type": "call_offer",
                "call_id": cid,
                "room_id": room,
                "to": to,
                "media": "video",
                "sdp": "v=0",
            },
        )
        return cid

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.store.records]


@pytest.fixture
def w() -> World:
    return World()


def test_offer_rings_every_callee_device_and_the_answer_goes_to_the_caller(w: World) -> None:
    a, phone, laptop = w.socket(ALICE), w.socket(BOB), w.socket(BOB)
    cid = w.offer(a)
    assert a.of("call_ringing") == [{"type": "call_ringing", "call_id": cid, "polite": False}]
    for device in (phone, laptop):
        offer = device.of("call_offer")[0]
        assert offer["from"] == {"id": ALICE, "username": "alice"} and offer["polite"] is True
    w.send(phone, {"type": "call_answer", "call_id": cid, "sdp": "v=1"})
    assert a.of("call_answer")[0]["from"]["id"] == BOB
    assert laptop.of("call_answered_elsewhere") == [
        {"type": "call_answered_elsewhere", "call_id": cid}
    ]
    w.send(laptop, {"type": "call_answer", "call_id": cid, "sdp": "v=1"})
    assert len(a.of("call_answer")) == 1
    w.send(a, {"type": "call_end", "call_id": cid})
    assert phone.of("call_end") == [{"type": "call_end", "call_id": cid, "reason": "hangup"}]
    assert w.outcomes() == ["completed"]
    assert not w.calls.in_call(ALICE) and not w.calls.in_call(BOB)


def test_decline_reaches_the_caller_and_the_callees_other_devices(w: World) -> None:
    a, phone, laptop = w.socket(ALICE), w.socket(BOB), w.socket(BOB)
    cid = w.offer(a)
    w.send(phone, {"type": "call_rejected", "call_id": cid, "reason": "declined"})
    assert a.of("call_rejected")[0]["reason"] == "declined"
    assert laptop.of("call_rejected")
    assert w.outcomes() == ["declined"]


def test_caller_hanging_up_while_ringing_cancels(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.send(a, {"type": "call_end", "call_id": cid})
    assert b.of("call_cancelled") == [{"type": "call_cancelled", "call_id": cid}]
    assert w.outcomes() == ["cancelled"]


def test_no_answer_times_out_on_both_sides_as_missed(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.clock.fire(RING)
    assert (
        a.of("call_timeout") == b.of("call_timeout") == [{"type": "call_timeout", "call_id": cid}]
    )
    assert w.outcomes() == ["missed"]


def test_calling_someone_in_a_call_is_busy_and_recorded(w: World) -> None:
    a, b, c = w.socket(ALICE), w.socket(BOB), w.socket(CAROL)
    w.offer(a)
    second = w.offer(c, to=BOB, room=ROOM_CB)
    assert c.of("call_busy") == [{"type": "call_busy", "call_id": second}]
    assert w.outcomes() == ["busy"]
    assert len(b.of("call_offer")) == 1


def test_a_caller_already_in_a_call_cannot_start_another(w: World) -> None:
    a, _, _ = w.socket(ALICE), w.socket(BOB), w.socket(CAROL)
    w.offer(a)
    w.offer(a, to=BOB)
    assert a.of("error")[-1]["reason"] in {"busy", "forbidden"}


def test_glare_merges_into_the_call_that_rang_first(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    first = w.offer(a)
    second = w.offer(b, to=ALICE)
    assert b.of("call_merged") == [{"type": "call_merged", "call_id": second, "into": first}]
    assert len(a.of("call_offer")) == 0


def test_signals_from_a_third_user_are_refused_logged_and_never_delivered(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, m = w.socket(ALICE), w.socket(BOB), w.socket(MALLORY)
    cid = w.offer(a)
    with caplog.at_level(logging.WARNING, logger="parley.signaling"):
        w.send(m, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
        w.send(m, {"type": "ice_candidate", "call_id": cid, "candidate": None})
        w.send(m, {"type": "call_end", "call_id": cid})
        w.offer(m, to=BOB, room=ROOM_AB)
    assert [e["reason"] for e in m.of("error")] == ["not_found"] * 4
    assert "refused" in caplog.text
    assert not a.of("call_answer") and not a.of("ice_candidate")
    assert len(b.of("call_offer")) == 1
    assert w.calls.in_call(ALICE)


def test_candidates_go_only_to_the_other_participant_with_the_senders_identity(w: World) -> None:
    a, b, c = w.socket(ALICE), w.socket(BOB), w.socket(CAROL)
    cid = w.offer(a)
    w.send(b, {"type": "ice_candidate", "call_id": cid, "candidate": None})
    assert b.of("error")[-1]["reason"] == "forbidden"  # answer first
    w.send(b, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
    w.send(b, {"type": "ice_candidate", "call_id": cid, "candidate": {"candidate": "candidate:1"}})
    assert a.of("ice_candidate")[0]["from"] == {"id": BOB, "username": "bob"}
    assert not c.of("ice_candidate") and not b.of("ice_candidate")


def test_caller_candidates_are_replayed_to_a_callee_device_that_opens_mid_ring(w: World) -> None:
    a = w.socket(ALICE)
    cid = w.offer(a)
    assert a.of("call_ringing") == []  # nobody's device rang yet
    assert w.pushes and w.pushes[0][1]["type"] == "call_offer"
    w.send(a, {"type": "ice_candidate", "call_id": cid, "candidate": {"candidate": "candidate:1"}})
    late = w.socket(BOB)
    assert late.types()[-2:] == ["call_offer", "ice_candidate"]
    assert a.of("call_ringing")


def test_a_participant_who_resumes_within_the_grace_period_keeps_the_call(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.send(b, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
    w.drop(b)
    w.send(a, {"type": "ice_candidate", "call_id": cid, "candidate": {"candidate": "candidate:9"}})
    again = w.socket(BOB)
    w.send(again, {"type": "call_resume", "call_id": cid})
    assert again.types()[-2:] == ["call_resumed", "ice_candidate"]
    w.clock.fire(GRACE)
    assert w.calls.in_call(BOB) and w.outcomes() == []


def test_both_pages_reloading_keeps_one_call_with_one_record(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.send(b, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
    w.drop(b)
    w.drop(a)
    b2, a2 = w.socket(BOB), w.socket(ALICE)
    for sock in (b2, a2):
        w.send(sock, {"type": "call_resume", "call_id": cid})
    restart = {
        "type": "call_description",
        "call_id": cid,
        "description": {"type": "offer", "sdp": "v=0 new"},
        "restart": True,
    }
    w.send(a2, restart)
    assert b2.of("call_description")[-1]["restart"] is True
    w.send(b2, {**restart, "description": {"type": "answer", "sdp": "v=0 new"}, "restart": False})
    assert a2.of("call_description")[-1]["description"]["type"] == "answer"
    w.clock.fire(GRACE)  # the old sockets' grace periods pass without ending the call
    assert w.calls.in_call(ALICE) and w.calls.in_call(BOB) and w.outcomes() == []
    w.send(a2, {"type": "call_end", "call_id": cid})
    assert b2.of("call_end")[-1]["reason"] == "hangup"
    assert [(r.call_id, r.outcome) for r in w.store.records] == [(cid, "completed")]
    assert w.store.records[0].answered_at is not None


def test_a_participant_gone_past_the_grace_period_ends_the_call(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.send(b, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
    w.drop(b)
    w.clock.fire(GRACE)
    assert a.of("call_end") == [{"type": "call_end", "call_id": cid, "reason": "disconnected"}]
    assert w.outcomes() == ["completed"]


def test_renegotiation_is_only_for_active_calls(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    description = {
        "type": "call_description",
        "call_id": cid,
        "description": {"type": "offer", "sdp": "v"},
    }
    w.send(a, description)
    assert a.of("error")[-1]["reason"] == "forbidden"
    w.send(b, {"type": "call_answer", "call_id": cid, "sdp": "v=0"})
    w.send(a, description)
    assert b.of("call_description")[0]["from"]["id"] == ALICE


def test_resuming_an_ended_call_says_gone_and_call_ids_are_never_reused(w: World) -> None:
    a, b = w.socket(ALICE), w.socket(BOB)
    cid = w.offer(a)
    w.send(a, {"type": "call_end", "call_id": cid})
    w.send(a, {"type": "call_resume", "call_id": cid})
    assert a.of("call_end")[-1] == {"type": "call_end", "call_id": cid, "reason": "gone"}
    w.send(
        a,
        {
            "type": "call_offer",
            "call_id": cid,
            "room_id": ROOM_AB,
            "to": BOB,
            "media": "audio",
            "sdp": "v",
        },
    )
    assert a.of("error")[-1]["reason"] == "forbidden"
    assert len(b.of("call_offer")) == 1


def test_devices_rung_by_push_are_told_when_the_ringing_ends(w: World) -> None:
    a = w.socket(ALICE)
    cid = w.offer(a)
    w.send(a, {"type": "call_end", "call_id": cid})
    assert [p["type"] for user, p in w.pushes if user == BOB] == ["call_offer", "call_cancelled"]
    assert w.pushes[-1][1] == {"type": "call_cancelled", "call_id": cid}
    timed_out = w.offer(a)
    w.clock.fire(RING)
    assert w.pushes[-1][1] == {"type": "call_timeout", "call_id": timed_out}


def test_an_account_that_takes_many_calls_is_never_busy() -> None:
    w = World()
    w.calls._takes_many = lambda user_id: user_id == BOB  # the echo bot's account
    a, b, c = w.socket(ALICE), w.socket(BOB), w.socket(CAROL)
    first = w.offer(a)
    second = w.offer(c, to=BOB, room=ROOM_CB)
    assert [o["call_id"] for o in b.of("call_offer")] == [first, second]
    assert not c.of("call_busy")


def test_resuming_someone_elses_live_call_is_refused_once(w: World) -> None:
    a, _, m = w.socket(ALICE), w.socket(BOB), w.socket(MALLORY)
    cid = w.offer(a)
    w.send(m, {"type": "call_resume", "call_id": cid})
    assert m.types()[-1:] == ["error"] and len(m.of("error")) == 1
    assert m.of("call_end") == [] and m.of("call_resumed") == []


# A snapshot as the field-by-field serialiser before snapshot.py wrote it (candidates without
# their null fields, `lost` keyed by the user id as a string): what a running cluster has in Redis.
RINGING_ID, ACTIVE_ID = str(uuid.uuid4()), str(uuid.uuid4())
EARLIER_SNAPSHOT = [
    {
        "id": RINGING_ID,
        "room_id": ROOM_AB,
        "media": "video",
        "state": "ringing",
        "caller": {"id": ALICE, "username": "alice"},
        "callee": {"id": BOB, "username": "bob"},
        "started_at": "2026-11-27T10:00:00.123456",
        "answered_at": None,
        "caller_conn": "gone-node.a1",
        "callee_conn": None,
        "offer_sdp": "v=0 offer",
        "early_candidates": [{"candidate": "candidate:1", "sdpMLineIndex": 0}, None],
        "ringing_sent": True,
        "pushed": False,
        "lost": {},
    },
    {
        "id": ACTIVE_ID,
        "room_id": ROOM_CB,
        "media": "audio",
        "state": "active",
        "caller": {"id": CAROL, "username": "carol"},
        "callee": {"id": BOB, "username": "bob"},
        "started_at": "2026-11-27T10:00:00",
        "answered_at": "2026-11-27T10:00:05",
        "caller_conn": None,
        "callee_conn": None,
        "offer_sdp": "",
        "early_candidates": [],
        "ringing_sent": True,
        "pushed": False,
        "lost": {str(BOB): "gone-node.b1"},
    },
]


def test_a_snapshot_written_by_the_earlier_serialiser_is_taken_over(w: World) -> None:
    w.calls.restore(EARLIER_SNAPSHOT)
    # The ringing call rings a callee device that opens, with the offer and caller candidates.
    b = w.socket(BOB)
    assert b.of("call_offer")[0]["sdp"] == "v=0 offer"
    first, last = (f["candidate"] for f in b.of("ice_candidate"))
    assert (first["candidate"], first["sdpMLineIndex"], last) == ("candidate:1", 0, None)
    # Both calls come back as they were saved, and say so again in the same words.
    again = {c["id"]: c for c in w.calls.snapshot(ringing=True)}
    assert again[ACTIVE_ID]["lost"] == {str(BOB): "gone-node.b1"}
    assert again[ACTIVE_ID]["answered_at"] == "2026-11-27T10:00:05"
    assert again[RINGING_ID]["lost"] == {str(ALICE): "gone-node.a1"}
    # The active call's participants resume it within the grace period.
    c = w.socket(CAROL)
    w.send(c, {"type": "call_resume", "call_id": ACTIVE_ID})
    assert c.of("call_resumed") == [{"type": "call_resumed", "call_id": ACTIVE_ID, "polite": False}]
    w.send(c, {"type": "call_end", "call_id": ACTIVE_ID})
    assert [(r.call_id, r.outcome) for r in w.store.records] == [(ACTIVE_ID, "completed")]
