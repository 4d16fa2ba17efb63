"""Live calls handed from a stopping one-process server to the next, through the instance folder.

A restart on the same machine and database takes over the calls of the last process; the media
never went through the server, so the calls only need their signalling back. (A cluster hands
its calls over in Redis instead: cluster.py.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("parley.signaling")

CALLS_FILE = "live_calls-{}.json"  # one per database: servers may share an instance folder
HANDOVER_WINDOW = 120  # seconds a restart may take and still take over the live calls


class CallsFile:
    """The live calls of one database, kept in a file of the instance folder."""

    def __init__(self, instance_path: str, database: str) -> None:
        # Servers on other databases (tests run several at once) keep theirs in other files, so
        # one's restart never overwrites another's calls.
        digest = hashlib.sha256(database.encode()).hexdigest()[:16]
        self.path = Path(instance_path) / CALLS_FILE.format(digest)
        self.database = database

    def keep(self, calls: list[dict[str, Any]]) -> None:
        """Write the live calls (a registry snapshot) for the next server, if there are any."""
        if not calls:
            return
        payload = {"saved_at": time.time(), "database": self.database, "calls": calls}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(payload))
        partial.replace(self.path)  # the next server reads all of it or nothing
        log.info("handing %d live call(s) to the next server", len(calls))

    def take(self) -> list[dict[str, Any]]:
        """Return the calls the last server kept for this database, at most once, if recent."""
        if not self.path.exists():
            return []
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        if saved.get("database") != self.database:
            return []  # another database's calls
        self.path.unlink(missing_ok=True)
        if time.time() - float(saved.get("saved_at", 0)) >= HANDOVER_WINDOW:
            return []
        calls: list[dict[str, Any]] = saved.get("calls", [])
        log.info("took over %d live call(s)", len(calls))
        return calls
