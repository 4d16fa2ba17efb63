"""People reach Parley through Debian's nginx running the shipped deploy/nginx.conf.

nginx terminates TLS on loopback and passes pages, the API and the /ws upgrade to a Parley that
speaks plain HTTP behind it (PARLEY_TLS=0, PROXY_HOPS=1), as in docs/deploy.md. Every person in
this module signs up, chats and calls through nginx's https origin: `server` here is nginx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from harness.calls import video_call_round_trip
from harness.people import User, open_room
from harness.servers import NginxServer, make_test_certs, nginx_server, parley_server

HSTS = "max-age=63072000; includeSubDomains"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """nginx's https origin, in front of a plain-HTTP Parley (overrides conftest's `server`)."""
    root = tmp_path_factory.mktemp("e2e-proxy")
    certs = make_test_certs(root / "certs")
    with (
        parley_server(root / "parley", certs, PARLEY_TLS="0", PROXY_HOPS="1") as parley,
        nginx_server(root, parley) as front,
    ):
        assert parley.url.startswith("http://")  # the browsers' TLS is nginx's alone
        yield front


@pytest.mark.parametrize("engines", [("chromium", "chromium"), ("chromium", "firefox")],
                         ids=lambda e: f"{e[0]}-{e[1]}")  # fmt: skip
def test_sign_up_chat_and_a_video_call_through_nginx(
    server: NginxServer, make_user: Callable[..., User], engines: tuple[str, str]
) -> None:
    alice, bob = make_user(engines[0]), make_user(engines[1])
    assert alice.page.url.startswith(server.url)
    page = alice.page.reload()
    assert page is not None and page.headers["strict-transport-security"] == HSTS
    open_room(alice, bob)

    alice.page.get_by_role("textbox", name="Message").fill("hello through nginx")
    alice.page.get_by_role("button", name="Send").click()
    expect(bob.page.get_by_role("log", name="Messages")).to_contain_text("hello through nginx")
    # The other person has the chat open: past Delivered to Read (ticks come from the server).
    expect(
        alice.page.get_by_role("log", name="Messages").get_by_text("Read", exact=True)
    ).to_be_visible()
    bob.page.get_by_role("textbox", name="Message").fill("and back")
    bob.page.get_by_role("button", name="Send").click()
    expect(alice.page.get_by_role("log", name="Messages")).to_contain_text("and back")

    video_call_round_trip(alice, bob, ender=bob)
