"""Failed sign-ins: limited per account and per address, with a time to retry, never others'."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import expect, sync_playwright

from backend.auth import PASSWORD_MIN
from backend.extensions import db
from harness.browsers import launch, new_context, off_the_loop
from harness.flaskapp import ApiClient, Auth, build_app
from harness.servers import make_test_certs, parley_server, redis_server

RETRY = re.compile(r"^Too many attempts\. Try again in (\d+) s\.$")

Client = Callable[..., FlaskClient]


def limited_app(tmp_path: Path, **limits: str) -> Flask:
    """Return an app on a fresh SQLite database with the given limits."""
    app = build_app(
        f"sqlite:///{tmp_path / 'limits.db'}",
        **{
            "LOGIN_ACCOUNT_LIMIT": "3 per 5 minutes",
            "LOGIN_ADDRESS_LIMIT": "6 per 5 minutes",
            **limits,
        },
    )
    app.test_client_class = ApiClient
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = limited_app(tmp_path)
    yield app
    with app.app_context():
        db.engine.dispose()


def browser_at(app: Flask, address: str) -> FlaskClient:
    """Return a new browser (own cookie jar) whose requests come from address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def device(app: Flask) -> Client:
    """Return a factory of browsers, each with its own cookies, at an address (default one)."""

    return lambda address="198.51.100.7": browser_at(app, address)


def registered(device: Client, *names: str) -> None:
    """Sign people up on a browser of their own elsewhere (not the address under test)."""
    for name in names:
        assert Auth(device("192.0.2.200")).register(name).status_code == 201


def assert_retry_later(response: Any) -> int:
    """Assert a 429 that says when to retry, in the message and in Retry-After; return it."""
    assert response.status_code == 429
    match = RETRY.match(response.json["error"])
    assert match, response.json
    seconds = int(match.group(1))
    assert seconds >= 1
    assert abs(int(response.headers["Retry-After"]) - seconds) <= 1
    return seconds


def test_failures_on_one_account_say_when_to_retry_and_spare_others_at_that_address(
    device: Client,
) -> None:
    registered(device, "alice", "bob")
    guesser = Auth(device())
    assert [guesser.login("alice", "guess").status_code for _ in range(3)] == [401] * 3
    seconds = assert_retry_later(guesser.login("alice", "correct horse"))
    assert 200 <= seconds <= 300  # the oldest failure leaves the 5-minute window
    # Bob is behind the same NAT, on a browser that never signed in here: not his problem.
    assert Auth(device()).login("bob", "correct horse").status_code == 200


def test_the_address_has_a_larger_budget_and_right_passwords_do_not_spend_it(
    device: Client,
) -> None:
    registered(device, "alice", "bob", "carol")
    for _ in range(4):
        assert Auth(device()).login("carol", "correct horse").status_code == 200
    # Six failures spread over accounts (under each account's 3) fill the address's budget.
    for name in ["alice", "alice", "bob", "bob", "nobody", "nobody"]:
        assert Auth(device()).login(name, "guess").status_code == 401
    assert_retry_later(Auth(device()).login("carol", "guess"))
    # A new browser at the address waits; the same account from another address does not.
    assert_retry_later(Auth(device()).login("carol", "correct horse"))
    assert Auth(device("203.0.113.9")).login("carol", "correct horse").status_code == 200


def test_a_browser_that_signed_in_before_is_never_locked_out_by_others(device: Client) -> None:
    registered(device, "alice", "bob")
    bobs_phone = device()
    assert Auth(bobs_phone).login("bob", "correct horse").status_code == 200
    # Someone at the same address burns the address's budget and bob's account budget.
    for name in ["alice", "alice", "alice", "bob", "bob", "bob"]:
        assert Auth(device()).login(name, "guess").status_code in (401, 429)
    assert_retry_later(Auth(device()).login("bob", "correct horse"))
    assert Auth(bobs_phone).logout().status_code == 204
    assert Auth(bobs_phone).login("bob", "correct horse").status_code == 200
    # The phone's own mistakes are still limited, on its own budget.
    assert [Auth(bobs_phone).login("bob", "typo").status_code for _ in range(3)] == [401] * 3
    assert_retry_later(Auth(bobs_phone).login("bob", "correct horse"))


def test_ipv6_clients_of_one_network_share_the_address_budget(device: Client) -> None:
    registered(device, "alice")
    for host in range(1, 7):
        neighbour = Auth(device(f"2001:db8:1:2::{host}"))
        assert neighbour.login(f"user{host}", "guess").status_code == 401
    assert_retry_later(Auth(device("2001:db8:1:2::99")).login("alice", "correct horse"))
    assert Auth(device("2001:db8:1:3::1")).login("alice", "correct horse").status_code == 200


def test_after_the_wait_the_right_password_works(tmp_path: Path) -> None:
    app = limited_app(tmp_path, LOGIN_ACCOUNT_LIMIT="2 per 2 seconds")
    Auth(browser_at(app, "192.0.2.1")).register("alice")
    browser = Auth(app.test_client())
    assert [browser.login("alice", "guess").status_code for _ in range(2)] == [401, 401]
    assert_retry_later(browser.login("alice", "correct horse"))
    deadline = time.monotonic() + 30
    while (status := browser.login("alice", "correct horse").status_code) == 429:
        assert time.monotonic() < deadline, "still refused long after the window"
        time.sleep(0.2)
    assert status == 200


def test_sign_ups_are_limited_per_address_and_say_when_to_retry(tmp_path: Path) -> None:
    app = limited_app(tmp_path, AUTH_RATE_LIMIT="2 per minute")
    browser = Auth(app.test_client())
    assert [browser.register(f"user{i}").status_code for i in range(2)] == [201, 201]
    assert_retry_later(browser.register("user2"))


def test_failures_are_counted_together_by_servers_sharing_redis(tmp_path: Path) -> None:
    certs = make_test_certs(tmp_path / "certs")
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    limits = {"LOGIN_ACCOUNT_LIMIT": "3 per 5 minutes", "LOGIN_ADDRESS_LIMIT": "50 per 5 minutes"}
    with (
        redis_server(tmp_path / "redis") as redis,
        parley_server(tmp_path / "a", certs, database, REDIS_URL=redis.url, **limits) as a,
        parley_server(tmp_path / "b", certs, database, REDIS_URL=redis.url, **limits) as b,
    ):
        assert post(a, "/api/register", "alice", "correct horse")[0] == 201
        statuses = [post(server, "/api/login", "alice", "guess")[0] for server in (a, b, a)]
        assert statuses == [401, 401, 401]
        status, body, headers = post(b, "/api/login", "alice", "correct horse")
        assert status == 429 and RETRY.match(body["error"]) and headers["Retry-After"]


def post(server: Any, path: str, username: str, password: str) -> tuple[int, Any, Any]:
    """POST credentials to a live server as a browser with no cookies would."""
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Origin": server.url},
    )
    try:
        with urllib.request.urlopen(request, context=server.ssl_context(), timeout=30) as r:
            return r.status, json.load(r), r.headers
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers


def test_the_page_shows_the_rules_first_and_the_servers_time_to_retry(tmp_path: Path) -> None:
    certs = make_test_certs(tmp_path / "certs")
    with parley_server(tmp_path / "web", certs, LOGIN_ACCOUNT_LIMIT="2 per 5 minutes") as server:
        off_the_loop(lambda: rules_then_retry(server.url))


def rules_then_retry(url: str) -> None:
    """Show the rules, fail twice, and see the server's time to retry, in a real Chromium."""
    with sync_playwright() as p:
        browser = launch(p, "chromium")
        try:
            page = new_context(browser, "chromium").new_page()
            page.goto(url)
            rules = page.locator("#auth-rules")
            # Before anything is typed, the rules the server will apply are on the page.
            expect(rules).to_contain_text(f"Password: at least {PASSWORD_MIN} characters")
            expect(rules).to_contain_text("Username: 3-32 characters")
            error = page.locator("form.auth .error")
            expect(error).to_have_text("")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "not the password")
            for _ in range(2):
                page.click("button[type=submit]")
                expect(error).to_have_text("wrong username or password")
                error.evaluate("element => { element.textContent = ''; }")
            page.click("button[type=submit]")
            expect(error).to_have_text(RETRY)
        finally:
            browser.close()
