"""`python -m backend.peer`, with what an SFU call's sending connection sent in the stats.

    .venv/bin/python bench/sfu_peer.py [the arguments of python -m backend.peer]

A mesh pair's stats carry `bytes_sent` (its senders' outbound-rtp); an SFU call's per-participant
entries do not, since the one connection that sends is not any participant's. bench/sfu.py runs
its peers through this file so both topologies' uplink is read the same way: the stats line gains
`publish_bytes_sent`, the outbound-rtp bytes per kind of the SFU publisher (zero in a mesh), and
the stats are asked again when a mesh pair was added while they were read (see `_stats`).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.peer.__main__ import main  # noqa: E402
from backend.peer.group import GroupCall  # noqa: E402

_group_stats = GroupCall.stats


async def _published(call: GroupCall) -> dict[str, int]:
    """RTP payload bytes the SFU publisher sent so far, per kind."""
    sent = {"audio": 0, "video": 0}
    publisher = call.sfu.publisher if call.sfu is not None else None
    if publisher is None:
        return sent
    with contextlib.suppress(Exception):  # a closed connection has no transports to ask
        for stat in (await publisher.getStats()).values():
            if stat.type == "outbound-rtp":
                sent[stat.kind] += stat.bytesSent
    return sent


async def _stats(call: GroupCall) -> dict[str, Any]:
    """The group call's stats, plus `publish_bytes_sent`."""
    for _ in range(9):
        # GroupCall.stats iterates its pairs across awaits: a pair made meanwhile raises
        # "dictionary changed size during iteration" (and SIGUSR1 would print nothing).
        with contextlib.suppress(RuntimeError):
            return {**await _group_stats(call), "publish_bytes_sent": await _published(call)}
    return {**await _group_stats(call), "publish_bytes_sent": await _published(call)}


GroupCall.stats = _stats  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    sys.exit(main())
