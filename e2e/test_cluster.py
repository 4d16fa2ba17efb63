"""Two Parley instances behind one Redis: people on different instances chat and call in browsers.

alice's browser uses instance A (its own origin), bob's uses instance B; both share one database
and a real redis-server started here on loopback. Everything between them (presence, chat,
ringing, offer/answer, candidates) crosses Redis; the media goes browser to browser.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect

from harness.calls import video_call_round_trip
from harness.people import User, open_room, people_on
from harness.servers import ParleyServer, make_test_certs, parley_server, redis_server


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ParleyServer]]:
    root = tmp_path_factory.mktemp("e2e-cluster")
    certs = make_test_certs(root / "certs")
    database = f"sqlite:///{root / 'parley.db'}"
    with redis_server(root / "redis") as redis:
        env = {"REDIS_URL": redis.url, "REDIS_PREFIX": f"e2e{uuid.uuid4().hex[:8]}"}
        with (
            parley_server(root / "a", certs, database, **env) as a,
            parley_server(root / "b", certs, database, **env) as b,
        ):
            yield [a, b]


@pytest.fixture
def person_on(
    instances: list[ParleyServer], browsers: Callable[[str], Browser]
) -> Iterator[Callable[[str, int], User]]:
    with (
        people_on(instances[0], browsers, "cla") as on_a,
        people_on(instances[1], browsers, "clb") as on_b,
    ):
        yield lambda engine, instance: (on_a, on_b)[instance](engine)


@pytest.mark.parametrize("engines", [("chromium", "chromium"), ("chromium", "firefox")],
                         ids=lambda e: f"{e[0]}-{e[1]}")  # fmt: skip
def test_people_on_two_instances_chat_and_call(
    person_on: Callable[[str, int], User], engines: tuple[str, str]
) -> None:
    alice, bob = person_on(engines[0], 0), person_on(engines[1], 1)
    open_room(alice, bob)

    bob.page.get_by_role("textbox", name="Message").fill("hello from instance B")
    bob.page.get_by_role("button", name="Send").click()
    expect(alice.page.get_by_role("log", name="Messages")).to_contain_text("hello from instance B")
    # The other person has the chat open: past Delivered to Read (ticks come from the server).
    expect(
        bob.page.get_by_role("log", name="Messages").get_by_text("Read", exact=True)
    ).to_be_visible()

    video_call_round_trip(alice, bob, ender=alice)
