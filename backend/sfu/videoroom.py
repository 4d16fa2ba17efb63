"""One group call's room in Janus's VideoRoom plugin: made, guarded and destroyed by Parley.

A room's number is 52 random bits, its `secret` (to change or destroy it) and `pin` (to join it)
are random tokens, and it is private (not listed), so nothing outside Parley can find, join or
end it; creating one needs the plugin's admin key. Each participant publishes under their user
id as feed id and their user id as display name, so Janus's events name them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .janus import Listener, Session, plugin_data

PLUGIN = "janus.plugin.videoroom"


@dataclass
class Room:
    """A VideoRoom room and the handle Parley manages it through."""

    session: Session
    admin_key: str
    publishers: int
    number: int = field(default_factory=lambda: secrets.randbits(52) + 1)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    pin: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    handle: int = 0

    def create(self) -> None:
        """Create the room (VP8 and Opus, the codecs every browser and aiortc share)."""
        self.handle = self.session.attach(PLUGIN, lambda event: None)
        self.session.message(
            self.handle,
            {
                "request": "create",
                "room": self.number,
                "admin_key": self.admin_key,
                "secret": self.secret,
                "pin": self.pin,
                "is_private": True,
                "permanent": False,
                "publishers": self.publishers,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "notify_joining": False,
                "bitrate": 1_000_000,
            },
        )

    def destroy(self) -> None:
        """Destroy the room: Janus closes every publisher's and subscriber's connection."""
        self.session.message(
            self.handle, {"request": "destroy", "room": self.number, "secret": self.secret}
        )

    def kick(self, feed: int) -> None:
        """Put a participant out of the room (their connections close)."""
        body = {"request": "kick", "room": self.number, "secret": self.secret, "id": feed}
        self.session.message(self.handle, body)

    def feeds(self) -> list[dict[str, Any]]:
        """Return the room's participants as Janus lists them (`id`, `display`, `publisher`)."""
        body = {"request": "listparticipants", "room": self.number, "secret": self.secret}
        answer = self.session.message(self.handle, body)
        found = plugin_data(answer).get("participants")
        return found if isinstance(found, list) else []

    # --- what a participant's handles send -------------------------------------------------

    def publish(self, handle: int, feed: int, offer: dict[str, Any]) -> dict[str, Any]:
        """Join as publisher `feed` and publish the offer; return Janus's event (its answer)."""
        body = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": self.number,
            "pin": self.pin,
            "id": feed,
            "display": str(feed),
            "audio": True,
            "video": True,
        }
        return self.session.message(handle, body, jsep=offer)

    def subscribe(self, handle: int, feeds: list[int], first: bool) -> dict[str, Any]:
        """Subscribe a handle to feeds: `join` the first time, `subscribe` after; Janus offers."""
        streams = [{"feed": feed} for feed in feeds]
        if first:
            body = {
                "request": "join",
                "ptype": "subscriber",
                "room": self.number,
                "pin": self.pin,
                "streams": streams,
            }
        else:
            body = {"request": "subscribe", "streams": streams}
        return self.session.message(handle, body)

    def attach(self, listener: Listener) -> int:
        """Attach a handle for a participant's publisher or subscriber connection."""
        return self.session.attach(PLUGIN, listener)
