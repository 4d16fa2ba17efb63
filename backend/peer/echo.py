"""The echo-test bot: answers every call and plays the caller back to themselves.

Audio comes back about 2 s late (so you hear yourself as others hear you), video live with an
"ECHO TEST" banner burnt into the picture. A call ends after ECHO_MAX_SECONDS (2 minutes) with a
note in the room.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import os
from pathlib import Path

import av
from aiortc import MediaStreamTrack

from backend.signaling.protocol import ChatSend

from .client import REPO, ParleyClient
from .peer import Peer, PeerCall

log = logging.getLogger("parley.echo")

AUDIO_DELAY_S = 2.0

# 5x7 bitmap font for the banner.
FONT = {
    "E": ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
    "C": ["01111", "10000", "10000", "10000", "10000", "10000", "01111"],
    "H": ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
    "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
    "T": ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
    "S": ["01111", "10000", "10000", "01110", "00001", "00001", "11110"],
    " ": ["00000"] * 7,
}
BANNER_TEXT = "ECHO TEST"


def banner_rows(width: int, scale: int) -> list[bytes]:
    """Luma rows of a dark banner with white text, `width` pixels wide."""
    pad = scale
    height = 7 * scale + 2 * pad
    rows = [bytearray(b"\x20" * width) for _ in range(height)]
    x = pad
    for char in BANNER_TEXT:
        glyph = FONT[char]
        for gy, line in enumerate(glyph):
            for gx, bit in enumerate(line):
                if bit == "1":
                    for dy in range(scale):
                        start = x + gx * scale
                        if start + scale <= width:
                            rows[pad + gy * scale + dy][start : start + scale] = b"\xeb" * scale
        x += 6 * scale
    return [bytes(row) for row in rows]


class EchoTrack(MediaStreamTrack):
    """A track whose frames come from one remote track (a relayed copy), changed on the way."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    def stop(self) -> None:
        super().stop()
        self.source.stop()  # lets the relay stop reading once nothing else does


class EchoVideo(EchoTrack):
    """The remote video with the banner drawn into its top rows."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__(source)
        self._banner: tuple[int, list[bytes]] | None = None

    async def recv(self) -> av.VideoFrame:
        frame = await self.source.recv()
        assert isinstance(frame, av.VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        width = frame.width
        if self._banner is None or self._banner[0] != width:
            self._banner = (width, banner_rows(width, max(2, width // 160)))
        plane = frame.planes[0]
        view = memoryview(plane)
        for y, row in enumerate(self._banner[1][: frame.height]):
            view[y * plane.line_size : y * plane.line_size + width] = row
        return frame


class EchoAudio(EchoTrack):
    """The remote audio, AUDIO_DELAY_S late; silence until the delay line fills."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__(source)
        self.line: collections.deque[av.AudioFrame] = collections.deque()
        self.buffered = 0.0
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        frame = await self.source.recv()
        assert isinstance(frame, av.AudioFrame)
        self.line.append(frame)
        self.buffered += frame.samples / frame.sample_rate
        if self.buffered - self.line[0].samples / frame.sample_rate >= AUDIO_DELAY_S:
            out = self.line.popleft()  # a decoded frame is ours to send on as it is
            self.buffered -= out.samples / out.sample_rate
        else:
            out = av.AudioFrame(
                format=frame.format.name, layout=frame.layout.name, samples=frame.samples
            )
            for plane in out.planes:
                plane.update(bytes(plane.buffer_size))
        out.sample_rate = frame.sample_rate
        out.pts = self._pts
        out.time_base = fractions.Fraction(1, frame.sample_rate)
        self._pts += frame.samples
        return out


class EchoBot:
    """Answer every call; send back what arrives; end calls after max_seconds."""

    def __init__(self, client: ParleyClient, max_seconds: float = 120) -> None:
        self.client = client
        self.max_seconds = max_seconds
        self.peer = Peer(
            client,
            tracks=lambda call: [],  # the echoes are added as the caller's tracks arrive
            on_remote_track=self._echo,
            on_call=self._on_call,
            many=True,
        )

    def _on_call(self, call: PeerCall) -> None:
        call.tasks.append(asyncio.ensure_future(self._limit(call)))

    def _echo(self, call: PeerCall, track: MediaStreamTrack) -> None:
        """Send a remote track back on the connection it came in on, before the answer is made."""
        if track.kind == "audio":
            call.pc.addTrack(EchoAudio(track))
        elif track.kind == "video":  # also a voice call's camera turned on (a renegotiation)
            call.pc.addTrack(EchoVideo(track))

    async def _limit(self, call: PeerCall) -> None:
        await asyncio.sleep(self.max_seconds)
        if call.finishing:
            return
        seconds = int(self.max_seconds)
        limit = f"{seconds // 60} minutes" if seconds >= 60 else f"{seconds} seconds"
        note = ChatSend(
            type="chat_message",
            room_id=call.room_id,
            client_id=f"echo-end-{call.id}",
            text=f"Echo test calls end after {limit}. Call again any time.",
        )
        with contextlib.suppress(Exception):
            await self.client.send(note)
        await self.peer.hang_up(call)


def echo_password() -> str:
    """The bot's password: ECHO_PASSWORD, or the server's instance/echo_password on this machine."""
    password = os.environ.get("ECHO_PASSWORD")
    if password:
        return password
    path = Path(os.environ.get("PARLEY_INSTANCE", REPO / "instance")) / "echo_password"
    return path.read_text().strip()


async def run_echo(base_url: str, ca_file: str | None, max_seconds: float) -> None:
    """Sign in as the echo account and serve calls until cancelled."""
    username = os.environ.get("ECHO_USERNAME", "echo")
    client = ParleyClient(base_url, username, echo_password(), ca_file)
    while True:
        try:
            await client.sign_in()
            break
        except Exception as exc:  # the server may still be starting
            log.info("echo bot cannot sign in yet (%s); retrying", exc)
            await asyncio.sleep(2)
    bot = EchoBot(client, max_seconds=max_seconds)
    log.info("echo bot signed in as %s at %s", username, base_url)
    try:
        await client.run(bot.peer.handle)
    finally:
        await bot.peer.close()
        await client.stop()
