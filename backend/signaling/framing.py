"""WebSocket text frames (RFC 6455, section 5.2) on the relay's hot path, without wsproto.

The server sends every message as one unfragmented, unmasked text frame with no extension
(Parley declines permessage-deflate). Its header is two to ten bytes; building it here costs a
fraction of wsproto's event machinery, which ran for every frame Parley relays
(docs/benchmarks.md, section 1). Incoming plain text frames are read by FastReader; control
frames, fragments and the close handshake stay with simple-websocket and wsproto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from wsproto.events import CloseConnection, Event, TextMessage

_FIN_TEXT = 0x81  # FIN bit set, opcode 0x1 (text)
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def text_frame(text: str) -> bytes:
    """Return the bytes of one final, unmasked text frame carrying `text` as UTF-8."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _LEN16.pack(_FIN_TEXT, 126, size) + payload
    return _LEN64.pack(_FIN_TEXT, 127, size) + payload


_FAST_MAX = 16 * 1024  # bytes: larger frames stream through wsproto as they arrive


class FastReader:
    """Stand in for a server's wsproto WSConnection, reading plain text frames itself.

    simple-websocket's reader feeds every received chunk to `receive_data` and then takes the
    `events()`. wsproto's generic parser cost about as much per relayed frame as everything
    else Parley does for it; most frames are one complete, masked, final text frame, which this
    unmasks and decodes in a few steps. Every other frame (control frames, fragments, binary,
    anything malformed or over 16 KiB) goes to wsproto whole and in order, so pings, close
    codes and errors are wsproto's own. Sending is wsproto's too.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._buffer = bytearray()
        self._through = 0  # bytes of a long frame still to hand to wsproto as they come
        self._fragmented = False  # wsproto is inside a fragmented message
        self._closed = False  # a close frame went to wsproto: it has the rest
        self._failed = False  # wsproto closed the connection (a close or a bad frame)
        # In arrival order: (a message read here, None) or (None, bytes for wsproto or None).
        self._pending: list[tuple[TextMessage | None, bytes | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, event: Event) -> bytes:
        """Return the bytes for an outgoing event (wsproto's job)."""
        data: bytes = self._inner.send(event)
        return data

    def receive_data(self, data: bytes | None) -> None:
        """Take bytes from the network; `events()` then yields what they complete."""
        if data is None or self._closed:  # None: the peer went away (wsproto's convention)
            self._pending.append((None, data))
            self._closed = True
            return
        buffer = self._buffer
        buffer += data
        while buffer:
            if self._through:
                take = min(self._through, len(buffer))
                self._pending.append((None, bytes(buffer[:take])))
                del buffer[:take]
                self._through -= take
                continue
            size = _frame_size(buffer)
            if size is None:
                return  # the header is not complete yet
            head, total = size
            fast = buffer[0] == _FIN_TEXT and buffer[1] & 0x80 and not self._fragmented
            # Only the shortest length encoding: wsproto refuses the others, so it sees them.
            if not fast or total - head > _FAST_MAX or head - 4 - 2 != _extra(total - head):
                self._to_wsproto(buffer, head, total)
                continue
            if len(buffer) < total:
                return  # wait for the rest of this frame
            message = _unmasked_text(buffer[head - 4 : head], buffer[head:total])
            self._pending.append((message, bytes(buffer[:total])))
            del buffer[:total]

    def _to_wsproto(self, buffer: bytearray, head: int, total: int) -> None:
        """Hand the frame at the start of buffer to wsproto, and the rest of it as it comes."""
        opcode = buffer[0] & 0x0F
        if opcode == 0x8:
            self._closed = True
        elif opcode < 0x8:  # data frames: wsproto keeps track of a fragmented message
            self._fragmented = not buffer[0] & 0x80
        take = min(total, len(buffer))
        self._pending.append((None, bytes(buffer[:take])))
        del buffer[:take]
        self._through = total - take
        if self._closed and buffer:
            self._pending.append((None, bytes(buffer)))
            buffer.clear()

    def events(self) -> Iterator[Event]:
        """Yield the events of the data received so far, in the order the frames came."""
        while self._pending:
            message, data = self._pending.pop(0)
            if message is not None and not self._failed:
                yield message
                continue
            # Not read here, or wsproto has refused an earlier frame: then it gets the rest too.
            self._inner.receive_data(data)
            for event in self._inner.events():
                if isinstance(event, CloseConnection):
                    self._failed = self._closed = True
                yield event


def _extra(length: int) -> int:
    """Return how many extended length bytes the shortest header for this payload has."""
    return 0 if length < 126 else 2 if length < 65536 else 8


def _frame_size(buffer: bytearray) -> tuple[int, int] | None:
    """Return (header length, frame length) of the frame buffer starts with, if known yet."""
    if len(buffer) < 2:
        return None
    length = buffer[1] & 0x7F
    mask = 4 if buffer[1] & 0x80 else 0
    if length < 126:
        return 2 + mask, 2 + mask + length
    extra = 2 if length == 126 else 8
    if len(buffer) < 2 + extra:
        return None
    length = int.from_bytes(buffer[2 : 2 + extra], "big")
    head = 2 + extra + mask
    return head, head + length


def _apply_mask_py(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """XOR data with the repeated 4-byte mask (RFC 6455, 5.3)."""
    size = len(data)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


try:  # websockets (a dependency, for the Python peers) ships the same XOR in C: 4-8x faster
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # a platform without its wheel: the same result in Python
    _apply_mask = _apply_mask_py


def _unmasked_text(mask: bytearray, payload: bytearray) -> TextMessage | None:
    """Return the text of a masked payload, or None when it is not valid UTF-8."""
    clear = _apply_mask(payload, mask)  # both take the bytearrays as they are: no copies
    try:
        return TextMessage(data=clear.decode("utf-8"), frame_finished=True, message_finished=True)
    except UnicodeDecodeError:
        return None
