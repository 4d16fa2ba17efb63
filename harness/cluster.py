"""Parley servers sharing a database and a Redis prefix, and what Redis says of them."""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from harness.servers import ParleyServer, RedisServer, make_test_certs, parley_server
from harness.wsclient import Person, Sock, username

GRACE = 8  # longer than the leader test's stop (2 x LEASE) plus the death verdict
CLUSTER = {"CALL_GRACE_PERIOD": str(GRACE), "CALL_RING_TIMEOUT": "20", "CLUSTER_HEARTBEAT": "0.5"}


def cluster_env(redis_proc: RedisServer, prefix: str) -> dict[str, str]:
    """Return the settings that join a server to the cluster on `redis_proc` under `prefix`."""
    return {**CLUSTER, "REDIS_URL": redis_proc.url, "REDIS_PREFIX": prefix}


class Cluster:
    """Parley servers sharing a database and a Redis prefix."""

    def __init__(self, servers: list[ParleyServer], rds: redis.Redis, prefix: str) -> None:
        self.servers = servers
        self.redis = rds
        self.prefix = prefix
        self.people: list[Person] = []

    def person(self, prefix: str = "user") -> Person:
        someone = Person(self.servers[0], username(prefix))
        self.people.append(someone)
        return someone

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def nodes_of(self, user: Person) -> set[str]:
        """The workers holding the user's sockets."""
        return set(self.redis.hkeys(self.key("presence", user.id)))

    def live_nodes(self) -> set[str]:
        """The workers whose heartbeat is current."""
        nodes: set[str] = self.redis.smembers(self.key("nodes"))  # type: ignore[assignment]
        return {node for node in nodes if self.redis.exists(self.key("alive", node))}

    def wait_for_workers(self, count: int, timeout: float = 90) -> None:
        """Wait until `count` workers beat: each joins when it has booted, before it accepts."""
        self._wait(lambda: len(self.live_nodes()) >= count, timeout)

    def pid_of(self, node: str) -> int:
        return int(self.redis.get(self.key("alive", node)) or 0)

    def leader(self) -> str:
        """The node holding the call leader lease (its value is `<node>:<epoch>`)."""
        deadline = time.monotonic() + 10
        while not (lease := self.redis.get(self.key("leader"))):
            assert time.monotonic() < deadline, "no call leader"
            time.sleep(0.1)
        return str(lease).split(":")[0]

    def kill(self, node: str) -> None:
        """SIGKILL the worker process of a node (gunicorn starts a new one)."""
        pid = self.pid_of(node)
        assert pid > 0, f"node {node} has no pid"
        os.kill(pid, signal.SIGKILL)
        status = Path(f"/proc/{pid}/status")
        self._wait(lambda: not status.exists() or "State:\tZ" in status.read_text())

    def connect_on(
        self, person: Person, want: Callable[[str], bool], server: ParleyServer | None = None
    ) -> tuple[Sock, str]:
        """Open sockets until one lands on a node `want` accepts; return it and its node.

        Without `server`, the attempts go round the cluster's servers. Which worker of an
        instance accepts a socket is the kernel's choice, so this tries until a deadline (a
        worker gunicorn is still booting, say after a kill, accepts nothing until it has).
        """
        deadline = time.monotonic() + 90
        for attempt in itertools.count():
            if time.monotonic() > deadline:
                break
            before = self.nodes_of(person)
            sock = person.connect(server=server or self.servers[attempt % len(self.servers)])
            new = self.nodes_of(person) - before
            if len(new) == 1 and want(node := new.pop()):
                return sock, node
            sock.close()
            person.sockets.remove(sock)
            self._wait(lambda before=before: self.nodes_of(person) == before)
        raise AssertionError("no socket landed on the node wanted")

    def apart(self, alice: Person, bob: Person) -> tuple[Sock, Sock, str, str]:
        """Connect alice, then bob on another node; return both sockets and both nodes."""
        a = alice.connect()
        (alice_node,) = self.nodes_of(alice)
        b, bob_node = self.connect_on(bob, lambda node: node != alice_node)
        return a, b, alice_node, bob_node

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def close(self) -> None:
        for someone in self.people:
            someone.close()


@contextmanager
def cluster(
    root: Path, database: str, redis_proc: RedisServer, nodes: list[str], **settings: str
) -> Iterator[Cluster]:
    """Run one server per name in `nodes` on `database`, joined through `redis_proc`."""
    certs = make_test_certs(root / "certs")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {**cluster_env(redis_proc, prefix), **settings}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(parley_server(root / node, certs, database, **env))
            for node in nodes
        ]
        running = Cluster(
            servers, redis.Redis.from_url(redis_proc.url, decode_responses=True), prefix
        )
        # A server answers once one worker has booted; the others may still be importing, and
        # until they join, every socket lands on the first.
        running.wait_for_workers(len(servers) * int(settings.get("WEB_CONCURRENCY", "1")))
        try:
            yield running
        finally:
            running.close()
