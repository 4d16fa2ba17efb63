"""The hub in memory: sockets per user, presence to room peers, delivery, closing a session."""

from __future__ import annotations

from backend.signaling.hub import Hub
from harness.fakes import FakeSocket

PEERS = {1: {2}, 2: {1}, 3: set()}


def make_hub() -> Hub:
    return Hub(lambda user_id: PEERS.get(user_id, set()))


def test_a_user_can_have_several_sockets_and_gets_everything_on_each() -> None:
    hub = make_hub()
    phone, laptop = FakeSocket(1), FakeSocket(1)
    hub.add(phone)
    hub.add(laptop)
    assert hub.deliver(1, {"type": "x"}) == 2
    assert phone.of("x") and laptop.of("x")
    assert hub.deliver(1, {"type": "y"}, exclude=phone.id) == 1
    assert not phone.of("y")


def test_presence_goes_to_room_peers_on_first_open_and_last_close_only() -> None:
    hub = make_hub()
    alice, stranger = FakeSocket(1), FakeSocket(3)
    hub.add(alice)
    hub.add(stranger)
    phone, laptop = FakeSocket(2), FakeSocket(2)
    assert hub.add(phone) is True
    assert hub.add(laptop) is False
    assert alice.of("presence") == [{"type": "presence", "user_id": 2, "online": True}]
    assert hub.remove(phone) is False
    assert hub.remove(laptop) is True
    assert alice.of("presence")[-1] == {"type": "presence", "user_id": 2, "online": False}
    assert stranger.of("presence") == []
    assert hub.online_peers(1) == []


def test_linking_two_users_shares_presence_at_once() -> None:
    hub = make_hub()
    a, c = FakeSocket(1), FakeSocket(3)
    hub.add(a)
    hub.add(c)
    hub.link(1, 3)
    assert a.of("presence") == [{"type": "presence", "user_id": 3, "online": True}]
    assert c.of("presence") == [{"type": "presence", "user_id": 1, "online": True}]
    assert hub.online_peers(3) == [1]


def test_close_session_closes_only_that_sessions_sockets() -> None:
    hub = make_hub()
    mine, other = FakeSocket(1, sid="a"), FakeSocket(1, sid="b")
    hub.add(mine)
    hub.add(other)
    hub.close_session(1, "a", 1000, "signed out")
    assert mine.closed == (1000, "signed out")
    assert other.closed is None


def test_a_dead_socket_does_not_stop_the_fan_out() -> None:
    hub = make_hub()
    dead, alive = FakeSocket(1), FakeSocket(1)
    dead.dead = True
    hub.add(dead)
    hub.add(alive)
    assert hub.deliver(1, {"type": "x"}) == 1
    assert alive.of("x")
