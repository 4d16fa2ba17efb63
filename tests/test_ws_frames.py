"""Frames the server writes and reads itself (signaling/framing.py), as others parse them."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection as WsprotoConnection
from wsproto.events import BytesMessage, Event, TextMessage
from wsproto.frame_protocol import FrameProtocol, Opcode

from backend.signaling.framing import FastReader, _apply_mask, _apply_mask_py, text_frame
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import Person, Sock, answered_call, username

# --- frames the server writes itself (backend/signaling/framing.py) -------------------------

FRAME_SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000]


@pytest.mark.parametrize("size", FRAME_SIZES)
def test_a_text_frame_of_any_length_class_parses_in_an_independent_client(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)  # two-byte characters: bytes, not characters
    frame = text_frame(text)
    assert frame[0] == 0x81  # final text frame; no mask bit from a server
    assert frame[1] == (size if size < 126 else 126 if size < 65536 else 127)
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(frame)
    [got] = list(client.received_frames())
    assert (got.opcode, got.payload, got.frame_finished, got.message_finished) == (
        Opcode.TEXT,
        text,
        True,
        True,
    )


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server that accepts client frames past 64 KiB, so it can be made to send such frames."""
    root = tmp_path_factory.mktemp("ws-frames")
    with parley_server(
        root,
        make_test_certs(root / "certs"),
        WS_MAX_MESSAGE=str(256 * 1024),
        WS_MESSAGE_BURST="100",
    ) as running:
        yield running


def raw_text(sock: Sock, kind: str) -> str:
    """Return the next frame of type `kind` as the text the client received."""
    sock.raw.settimeout(10)
    while True:
        text = str(sock.raw.recv())
        if json.loads(text)["type"] == kind:
            return text


def sized(byte_count: int, wide: str) -> str:
    """Return a string of exactly byte_count UTF-8 bytes, mostly of the multi-byte `wide`."""
    width = len(wide.encode())
    return wide * (byte_count // width) + "a" * (byte_count % width)


def test_frames_at_every_length_boundary_reach_a_real_client_intact(
    roomy_server: ParleyServer,
) -> None:
    alice = Person(roomy_server, username("frame"))
    bob = Person(roomy_server, username("frame"))
    try:
        room = alice.open_room(bob)
        a, b = alice.connect(), bob.connect()
        # Short frames: a pong carries the ping's token back, 22 bytes around it.
        for size in (22, 125, 126, 127, 200):
            token = sized(size - 22, "😀")
            a.send(json.dumps({"type": "ping", "t": token}, ensure_ascii=False))
            text = raw_text(a, "pong")
            assert len(text.encode()) == size
            assert json.loads(text) == {"type": "pong", "t": token}
        # Long frames: a description relayed in an active call, sized through its SDP.
        cid = answered_call(a, b, room, bob)

        def relay(sdp: str) -> str:
            description = {"type": "offer", "sdp": sdp}
            frame = {"type": "call_description", "call_id": cid, "description": description}
            a.send(json.dumps(frame, ensure_ascii=False))
            text = raw_text(b, "call_description")
            assert json.loads(text)["description"] == description
            return text

        overhead = len(relay("x").encode()) - 1
        for size in (1000, 65535, 65536, 70000):
            assert len(relay(sized(size - overhead, "€")).encode()) == size
        b.send({"type": "ping", "t": "still open"})
        assert b.expect("pong")["t"] == "still open"
    finally:
        alice.close()
        bob.close()


def client_frame(first: int, payload: bytes, *, mask: bool = True, wide: bool = False) -> bytes:
    """Return a client frame: first byte (FIN, RSV, opcode), payload masked unless told not."""
    size = len(payload)
    bit = 0x80 if mask else 0
    if wide or size >= 126:  # wide: the 16-bit length even for a short payload (not allowed)
        head = bytes((first, bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, bit | size))
    if not mask:
        return head + payload
    key = b"\x1f\x8b\x37\xc4"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


CLIENT_FRAMES = {
    "text": client_frame(0x81, json.dumps({"type": "ping", "t": "é😀"}).encode()),
    "empty text": client_frame(0x81, b""),
    "unicode text": client_frame(0x81, "é😀 ok".encode()),
    "long text": client_frame(0x81, b"x" * 20_000),
    "ping": client_frame(0x89, b"are you there"),
    "pong": client_frame(0x8A, b""),
    "binary": client_frame(0x82, b"\x00\x01"),
    "first fragment": client_frame(0x01, b"hel"),
    "last fragment": client_frame(0x80, b"lo"),
    "bad utf-8": client_frame(0x81, b"\xff\xfe"),
    "unmasked": client_frame(0x81, b"hi", mask=False),
    "padded length": client_frame(0x81, b"hi", wide=True),
    "reserved bit": client_frame(0xC1, b"hi"),
    "close": client_frame(0x88, (1000).to_bytes(2, "big") + b"bye"),
}


def messages_and_controls(events: Iterable[Event]) -> list[tuple[str, object]]:
    """Fold events into whole messages and control events, as simple-websocket reads them."""
    out: list[tuple[str, object]] = []
    parts: list[object] = []
    for event in events:
        if isinstance(event, TextMessage | BytesMessage):
            parts.append(event.data)
            if event.message_finished:
                joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
                out.append((type(event).__name__, joined))
                parts = []
        else:
            out.append((type(event).__name__, repr(event)))
    return out


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.sampled_from(sorted(CLIENT_FRAMES)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=25_000), max_size=6),
)
def test_the_fast_reader_reads_any_frames_in_any_chunks_as_wsproto_does(
    frames: list[str], cuts: list[int]
) -> None:
    stream = b"".join(CLIENT_FRAMES[name] for name in frames)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    plain = WsprotoConnection(ConnectionType.SERVER)
    fast = FastReader(WsprotoConnection(ConnectionType.SERVER))
    seen: dict[str, list[Event]] = {"plain": [], "fast": []}
    for chunk in chunks:
        for name, reader in (("plain", plain), ("fast", fast)):
            reader.receive_data(chunk)
            seen[name] += list(reader.events())
    assert messages_and_controls(seen["fast"]) == messages_and_controls(seen["plain"])


@given(data=st.binary(max_size=300), mask=st.binary(min_size=4, max_size=4))
def test_the_python_unmasking_fallback_gives_what_the_c_one_does(data: bytes, mask: bytes) -> None:
    assert _apply_mask_py(data, mask) == _apply_mask(data, mask)
    assert _apply_mask(_apply_mask(data, mask), mask) == data
