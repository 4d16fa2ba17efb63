"""Server-to-client WebSocket text frames (RFC 6455, section 5.2), written without wsproto.

The server sends every message as one unfragmented, unmasked text frame with no extension
(Parley declines permessage-deflate). Its header is two to ten bytes; building it here costs a
fraction of wsproto's event machinery, which ran for every frame Parley relays
(docs/benchmarks.md, section 1). Incoming frames, control frames and the close handshake stay
with simple-websocket and wsproto.
"""

from __future__ import annotations

import struct

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
