"""Parley behind Debian's nginx running the shipped deploy/nginx.conf, over real HTTPS on loopback.

The e2e suite (e2e/test_proxy.py) signs up, chats and calls through the same proxy in browsers;
these tests pin what a client sees of the proxy itself: HSTS, the redirect, and which address
the sign-in rate limit counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.servers import NginxServer, make_test_certs, nginx_server, parley_server

HSTS = "max-age=63072000; includeSubDomains"
SIGN_IN_LIMIT = 3


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    root = tmp_path_factory.mktemp("proxy")
    with (
        parley_server(
            root / "parley",
            make_test_certs(root / "certs"),
            PARLEY_TLS="0",
            PROXY_HOPS="1",
            # Only the per-address budget of failed sign-ins is under test here.
            LOGIN_ADDRESS_LIMIT=f"{SIGN_IN_LIMIT} per hour",
            LOGIN_ACCOUNT_LIMIT="1000 per hour",
        ) as parley,
        nginx_server(root, parley) as front,
    ):
        yield front


def client_from(proxy: NginxServer, address: str) -> httpx.Client:
    """Return an HTTPS client of nginx whose connections leave from `address` (any of 127/8)."""
    origin = f"https://127.0.0.1:{proxy.port}"
    transport = httpx.HTTPTransport(verify=proxy.ssl_context(), local_address=address)
    return httpx.Client(base_url=origin, transport=transport, headers={"Origin": origin})


def failed_sign_in(client: httpx.Client, headers: dict[str, str] | None = None) -> int:
    """Try one wrong password for the same account every time; return the status."""
    response = client.post(
        "/api/login", json={"username": "someone", "password": "not the password"}, headers=headers
    )
    return response.status_code


def test_the_sign_in_limit_counts_each_client_address_not_nginx(proxy: NginxServer) -> None:
    # Both clients reach Parley through the one nginx, so Parley's peer address is nginx's for
    # both; only X-Forwarded-For tells them apart. Same account, same requests: only the
    # address differs.
    with client_from(proxy, "127.0.0.2") as a, client_from(proxy, "127.0.0.3") as b:
        assert [failed_sign_in(a) for _ in range(SIGN_IN_LIMIT)] == [401] * SIGN_IN_LIMIT
        assert failed_sign_in(a) == 429
        assert failed_sign_in(b) == 401
        # A forged X-Forwarded-For buys no fresh allowance: Parley trusts only the entry nginx
        # appends (PROXY_HOPS=1).
        assert failed_sign_in(a, {"X-Forwarded-For": "203.0.113.7"}) == 429
        assert [failed_sign_in(b) for _ in range(SIGN_IN_LIMIT - 1)] == [401] * (SIGN_IN_LIMIT - 1)
        assert failed_sign_in(b) == 429


def test_pages_and_the_api_carry_one_hsts_header(proxy: NginxServer) -> None:
    with httpx.Client(base_url=proxy.url, verify=proxy.ssl_context()) as client:
        for path in ("/", "/api/me", "/no-such-file.js"):
            response = client.get(path)
            assert response.headers.get_list("strict-transport-security") == [HSTS], path


def test_parley_sees_the_https_origin_the_browser_used(proxy: NginxServer) -> None:
    # Parley runs plain HTTP on another port; X-Forwarded-Proto and the Host with its port make
    # the browser's Origin its own, so a sign-up through nginx is not refused as cross-origin.
    with httpx.Client(base_url=proxy.url, verify=proxy.ssl_context()) as client:
        account = {"username": "proxied", "password": "correct horse"}
        refused = client.post("/api/register", json=account, headers={"Origin": "https://evil"})
        assert refused.status_code == 403
        # nginx sets the forwarded host itself: a client's own X-Forwarded-Host does not pass.
        forged = {"Origin": "https://evil", "X-Forwarded-Host": "evil"}
        assert client.post("/api/register", json=account, headers=forged).status_code == 403
        created = client.post("/api/register", json=account, headers={"Origin": proxy.url})
        assert created.status_code == 201, created.text
        assert "secure" in created.headers["set-cookie"].lower()
        assert client.get("/api/me").json()["username"] == "proxied"


def test_plain_http_redirects_to_https_on_the_same_host_and_path(proxy: NginxServer) -> None:
    response = httpx.get(f"http://localhost:{proxy.http_port}/icons/icon-192.png?v=2")
    assert response.status_code == 301
    assert response.headers["location"] == "https://localhost/icons/icon-192.png?v=2"
