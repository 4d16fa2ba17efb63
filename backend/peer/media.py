"""Generated media for Python peers: a tone and moving stripes, paced by aiortc's stream tracks."""

from __future__ import annotations

import math
import struct

import av
from aiortc import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

TONE_HZ = 400
VIDEO_SIZE = (320, 240)


class ToneTrack(AudioStreamTrack):
    """A 400 Hz tone in the 20 ms frames AudioStreamTrack paces in real time."""

    def __init__(self) -> None:
        super().__init__()
        self._pcm: bytes | None = None

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # silence, timestamped and paced
        assert isinstance(frame, av.AudioFrame)
        if self._pcm is None:
            # A 20 ms frame holds whole periods of the tone, so one frame's samples repeat cleanly.
            rate, count = frame.sample_rate, frame.samples
            wave = (int(8000 * math.sin(2 * math.pi * TONE_HZ * n / rate)) for n in range(count))
            self._pcm = struct.pack(f"<{count}h", *wave)
        frame.planes[0].update(self._pcm)
        return frame


class PatternTrack(VideoStreamTrack):
    """Moving diagonal stripes, so a frozen picture is easy to tell from a live one."""

    def __init__(self, size: tuple[int, int] = VIDEO_SIZE) -> None:
        super().__init__()
        self.size = width, height = size
        # Row y shifted by s is `ramp` from (y + s) % 256: a 640x480 set takes milliseconds.
        ramp = bytes(i & 0xFF for i in range(width + 256))
        self._frames: list[bytes] = []
        for shift in range(0, 256, 8):
            starts = ((y + shift) & 0xFF for y in range(height))
            self._frames.append(b"".join(ramp[s : s + width] for s in starts))
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        width, height = self.size
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma = self._frames[self._count % len(self._frames)]
        plane = frame.planes[0]
        view = memoryview(plane)
        for y in range(height):
            row = y * plane.line_size
            view[row : row + width] = luma[y * width : (y + 1) * width]
        for chroma in frame.planes[1:]:
            memoryview(chroma)[:] = b"\x80" * chroma.buffer_size
        frame.pts = pts
        frame.time_base = time_base
        self._count += 1
        return frame


def generated_tracks(media: str, size: tuple[int, int] = VIDEO_SIZE) -> list[MediaStreamTrack]:
    """Return a tone, plus moving stripes of `size` for video calls."""
    tracks: list[MediaStreamTrack] = [ToneTrack()]
    if media == "video":
        tracks.append(PatternTrack(size))
    return tracks
