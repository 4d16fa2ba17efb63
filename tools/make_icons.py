"""Draw Parley's PNG icons (app, maskable, monochrome badge, apple-touch) into pwa/icons/."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "pwa" / "icons"
ACCENT = (37, 99, 235)
WHITE = (255, 255, 255)

Shade = Callable[[float, float], tuple[int, int, int, int]]


def png(path: Path, size: int, shade: Shade) -> None:
    """Write an RGBA PNG by sampling shade(x, y) on [0, 1]^2 with 2x2 supersampling."""
    rows = bytearray()
    for j in range(size):
        rows.append(0)
        for i in range(size):
            acc = [0, 0, 0, 0]
            for dx, dy in ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
                px = shade((i + dx) / size, (j + dy) / size)
                for k in range(4):
                    acc[k] += px[k]
            rows.extend(v // 4 for v in acc)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    data += chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    path.write_bytes(data)


def rounded_square(x: float, y: float, inset: float, radius: float) -> bool:
    """Tell whether (x, y) lies in a rounded square inset from the edges."""
    lo, hi = inset + radius, 1 - inset - radius
    cx, cy = min(max(x, lo), hi), min(max(y, lo), hi)
    return math.hypot(x - cx, y - cy) <= radius


def bubble(x: float, y: float, scale: float) -> bool:
    """A speech bubble with a tail, centred, `scale` of the icon wide."""
    u, v = (x - 0.5) / scale + 0.5, (y - 0.5) / scale + 0.5
    body = ((u - 0.5) / 0.42) ** 2 + ((v - 0.46) / 0.32) ** 2 <= 1
    tail = 0.22 <= u <= 0.42 and 0.62 <= v <= 0.86 and (u - 0.22) >= (v - 0.62) * 0.8
    return body or tail


def dots(x: float, y: float, scale: float) -> bool:
    """Three dots inside the bubble: a conversation in progress."""
    u, v = (x - 0.5) / scale + 0.5, (y - 0.5) / scale + 0.5
    return any(math.hypot(u - cx, v - 0.46) <= 0.05 for cx in (0.34, 0.5, 0.66))


def app_icon(x: float, y: float) -> tuple[int, int, int, int]:
    if not rounded_square(x, y, 0.0, 0.18):
        return (0, 0, 0, 0)
    if bubble(x, y, 0.72) and not dots(x, y, 0.72):
        return (*WHITE, 255)
    return (*ACCENT, 255)


def maskable(x: float, y: float) -> tuple[int, int, int, int]:
    # Full bleed; the bubble stays within the 80% safe zone.
    if bubble(x, y, 0.56) and not dots(x, y, 0.56):
        return (*WHITE, 255)
    return (*ACCENT, 255)


def badge(x: float, y: float) -> tuple[int, int, int, int]:
    # Monochrome: Android uses only the alpha channel.
    return (255, 255, 255, 255) if bubble(x, y, 0.9) and not dots(x, y, 0.9) else (0, 0, 0, 0)


def apple(x: float, y: float) -> tuple[int, int, int, int]:
    # iOS rounds the corners itself and shows transparency as black.
    if bubble(x, y, 0.7) and not dots(x, y, 0.7):
        return (*WHITE, 255)
    return (*ACCENT, 255)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    png(OUT / "icon-192.png", 192, app_icon)
    png(OUT / "icon-512.png", 512, app_icon)
    png(OUT / "maskable-512.png", 512, maskable)
    png(OUT / "badge-96.png", 96, badge)
    png(OUT / "apple-touch-icon-180.png", 180, apple)


if __name__ == "__main__":
    main()
