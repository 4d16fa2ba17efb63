"""In-memory stand-ins for our own interfaces (Connection, Scheduler, CallStore)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from backend.signaling.effects import CallRecord
from backend.signaling.protocol import User


class FakeSocket:
    """A Connection that records frames; `dead` makes send fail like a dropped socket."""

    def __init__(self, user_id: int, sid: str | None = "s") -> None:
        self.id = uuid.uuid4().hex
        self.user_id = user_id
        self.sid = sid
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.dead = False

    def send(self, text: str) -> None:
        if self.dead:
            raise ConnectionError("gone")
        self.frames.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]


class FakeTimer:
    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class HandScheduler:
    """A Scheduler whose timers fire when the test says so."""

    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, fn)
        self.timers.append(timer)
        return timer

    def fire(self, delay: float) -> None:
        for timer in [t for t in self.timers if t.delay == delay and not t.cancelled]:
            timer.cancelled = True
            timer.fn()


class MemoryStore:
    """A CallStore over dicts: rooms as user pairs, groups as member lists, records in a list."""

    def __init__(
        self,
        users: dict[int, str],
        rooms: dict[int, tuple[int, int]],
        groups: dict[int, list[int]] | None = None,
    ) -> None:
        self.users, self.rooms, self.groups = users, rooms, groups or {}
        self.records: list[CallRecord] = []

    def group_members(self, room_id: int) -> list[int] | None:
        return self.groups.get(room_id)

    def shared_room(self, room_id: int, a: int, b: int) -> bool:
        pair = self.rooms.get(room_id)
        return pair is not None and a != b and {a, b} == set(pair)

    def user(self, user_id: int) -> User | None:
        name = self.users.get(user_id)
        return None if name is None else User(id=user_id, username=name)

    def record(self, record: CallRecord) -> dict[str, Any] | None:
        self.records.append(record)
        return {"id": len(self.records), "kind": "call", "call": {"outcome": record.outcome}}
