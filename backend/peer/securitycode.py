"""A call's security code from both DTLS fingerprints, as pwa/js/securitycode.js computes it.

docs/protocol.md ("Security code") describes it; tests/test_securitycode.py pins both to the
same vectors.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

VERSION = "parley-security-code-v1"
SYMBOLS = 4  # 6 bits each: 24 bits of the hash

# Matrix's SAS emoji table (spec, "SAS method: emoji"), index = 6-bit value.
EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"),
    ("🦄", "Unicorn"), ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"),
    ("🐼", "Panda"), ("🐓", "Rooster"), ("🐧", "Penguin"), ("🐢", "Turtle"),
    ("🐟", "Fish"), ("🐙", "Octopus"), ("🦋", "Butterfly"), ("🌷", "Flower"),
    ("🌳", "Tree"), ("🌵", "Cactus"), ("🍄", "Mushroom"), ("🌏", "Globe"),
    ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"), ("🍌", "Banana"),
    ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"),
    ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs up"), ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"),
    ("🎁", "Gift"), ("💡", "Light bulb"), ("📕", "Book"), ("✏️", "Pencil"),
    ("📎", "Paperclip"), ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"),
    ("🔨", "Hammer"), ("☎️", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"),
    ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"), ("🏆", "Trophy"),
    ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip

_FINGERPRINT = re.compile(r"^a=fingerprint:[ \t]*(\S+)[ \t]+([0-9A-Fa-f:]+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class SecurityCode:
    """Four emoji and their names, as both sides of a call show them."""

    emoji: tuple[str, ...]
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        """Return the names as the page shows them: "Dog · Cat · …"."""
        return " · ".join(self.words)

    def to_json(self) -> dict[str, object]:
        """Return the code as the JS module's object: emoji, words, text."""
        return {"emoji": list(self.emoji), "words": list(self.words), "text": self.text}


def fingerprints(sdp: str) -> str:
    """Return one side's fingerprints normalised, without repeats, sorted and comma-joined."""
    found = {
        f"{algorithm.lower()} {value.upper()}"
        for algorithm, value in _FINGERPRINT.findall(sdp.replace("\r", ""))
    }
    return ",".join(sorted(found))


def security_code(local_sdp: str, remote_sdp: str) -> SecurityCode | None:
    """Return the code of a call from its two descriptions, in either order; None without both."""
    sides = sorted((fingerprints(local_sdp), fingerprints(remote_sdp)))
    if not all(sides):
        return None
    digest = hashlib.sha256("\n".join([VERSION, *sides]).encode()).digest()
    bits = int.from_bytes(digest[:3], "big")
    picked = [EMOJI[(bits >> (6 * i)) & 63] for i in reversed(range(SYMBOLS))]
    return SecurityCode(tuple(e for e, _ in picked), tuple(w for _, w in picked))
