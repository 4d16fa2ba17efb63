"""TURN: credentials from /api/ice-servers, checked by a real coturn on loopback through aiortc."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from flask import Flask
from flask.testing import FlaskClient

from backend.turn import turn_credentials
from backend.turnserver import LocalTurn
from harness import aio
from harness.flaskapp import ApiClient, build_app
from harness.servers import ParleyServer, make_test_certs, parley_server
from harness.wsclient import Person

SECRET = "turn-test-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTurn]:
    turn = LocalTurn(tmp_path_factory.mktemp("coturn"), secret=SECRET)
    turn.start()
    yield turn
    turn.stop()


def turn_app(tmp_path: Path, **config: Any) -> Flask:
    return build_app(
        f"sqlite:///{tmp_path / 'turn.db'}",
        **{
            "TURN_URLS": ["turn:127.0.0.1:3478?transport=udp"],
            "TURN_SECRET": SECRET,
            "TURN_TTL": 600,
            "STUN_URLS": ["stun:127.0.0.1:3478"],
            **config,
        },
    )


def signed_in(app: Flask) -> FlaskClient:
    app.test_client_class = ApiClient
    client = app.test_client()
    client.post("/api/register", json={"username": "alice", "password": "correct horse"})
    return client


# --- the API -------------------------------------------------------------------------------


def test_ice_servers_need_a_signed_in_user(client: FlaskClient) -> None:
    response = client.get("/api/ice-servers")
    assert response.status_code == 401
    assert response.json == {"error": "sign in first"}


def test_credentials_follow_the_turn_rest_scheme_and_never_carry_the_secret(
    tmp_path: Path,
) -> None:
    client = signed_in(turn_app(tmp_path))
    before = int(time.time())
    response = client.get("/api/ice-servers")
    assert response.status_code == 200
    body = response.json
    expiry, user_id = body["username"].split(":")
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert int(user_id) == client.get("/api/me").json["id"]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), body["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert body["password"] == expected
    assert body["ttl"] == 600
    assert body["iceTransportPolicy"] == "all"
    assert body["iceServers"] == [
        {"urls": ["stun:127.0.0.1:3478"]},
        {
            "urls": ["turn:127.0.0.1:3478?transport=udp"],
            "username": body["username"],
            "credential": expected,
        },
    ]
    assert SECRET not in response.get_data(as_text=True)


def test_without_turn_there_are_no_credentials(tmp_path: Path) -> None:
    client = signed_in(turn_app(tmp_path, TURN_URLS=[], TURN_SECRET="", STUN_URLS=[]))
    body = client.get("/api/ice-servers").json
    assert body == {"iceTransportPolicy": "all", "iceServers": []}


def test_ice_servers_are_rate_limited_per_user(tmp_path: Path) -> None:
    client = signed_in(turn_app(tmp_path, TURN_RATE_LIMIT="3 per minute"))
    statuses = [client.get("/api/ice-servers").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert "error" in client.get("/api/ice-servers").json


JANUS = {"JANUS_URL": "http://10.0.0.2:8088/janus", "JANUS_API_SECRET": "janus-key-" + SECRET}


def test_janus_gets_turn_credentials_with_its_key_and_no_cookie_or_origin(tmp_path: Path) -> None:
    """Janus's turn_rest_api request (draft-uberti-behave-turn-rest) as libcurl sends it: a POST
    of a form, the key in the query string too, no Origin, no session."""
    janus = turn_app(tmp_path, **JANUS).test_client()
    key = JANUS["JANUS_API_SECRET"]
    query = f"service=turn&api={key}&key={key}&username=1234"
    before = int(time.time())
    response = janus.post(f"/api/turn/janus?{query}", data=query,
                          content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 200, response.json
    body = response.json
    expiry, who = body["username"].split(":")
    assert who == "janus" and before + 600 <= int(expiry) <= int(time.time()) + 600
    digest = hmac.new(SECRET.encode(), body["username"].encode(), hashlib.sha1).digest()
    assert body["password"] == base64.b64encode(digest).decode()
    assert body["ttl"] == 600 and body["uris"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert SECRET not in response.get_data(as_text=True).replace(key, "")
    assert janus.get(f"/api/turn/janus?{query}").status_code == 200  # turn_rest_api_method GET


def test_janus_turn_credentials_refuse_a_wrong_key_and_need_janus_and_turn(
    tmp_path: Path,
) -> None:
    for folder in "bcd":
        (tmp_path / folder).mkdir()
    janus = turn_app(tmp_path, **JANUS).test_client()
    for query in ("service=turn&key=guess", "service=turn", "service=turn&api=guess"):
        response = janus.post(f"/api/turn/janus?{query}")
        assert (response.status_code, response.json) == (403, {"error": "wrong key"}), query
    # A signed-in browser gets nothing here either: its session is not the key.
    assert signed_in(turn_app(tmp_path / "b", **JANUS)).get("/api/turn/janus").status_code == 403
    key = JANUS["JANUS_API_SECRET"]
    no_sfu = turn_app(tmp_path / "c").test_client().post(f"/api/turn/janus?key={key}")
    assert (no_sfu.status_code, no_sfu.json) == (404, {"error": "no SFU is configured"})
    bare = turn_app(tmp_path / "d", **JANUS, TURN_URLS=[], TURN_SECRET="").test_client()
    no_turn = bare.post(f"/api/turn/janus?key={key}")
    assert (no_turn.status_code, no_turn.json) == (404, {"error": "no TURN is configured"})


# --- a real coturn -------------------------------------------------------------------------


async def relay_pair(servers: list[RTCIceServer], timeout: float = 10) -> tuple[bool, str]:
    """Connect two relay-only aiortc peers; return (data flowed, the offer's SDP)."""
    config = RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    try:
        channel = caller.createDataChannel("probe")
        channel.on("open", lambda: channel.send("through the relay"))

        @callee.on("datachannel")
        def _on_channel(incoming: Any) -> None:
            incoming.on("message", lambda m: got.done() or got.set_result(m))

        await caller.setLocalDescription(await caller.createOffer())
        offer = caller.localDescription
        if "typ relay" not in offer.sdp:
            return False, offer.sdp
        await callee.setRemoteDescription(offer)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        try:
            return await asyncio.wait_for(got, timeout) == "through the relay", offer.sdp
        except TimeoutError:
            return False, offer.sdp
    finally:
        await caller.close()
        await callee.close()


def candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line}


@pytest.fixture(scope="module")
def turn_server(
    coturn: LocalTurn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("turn-server")
    with parley_server(
        root,
        make_test_certs(root / "certs"),
        TURN_URLS=",".join(coturn.urls),
        TURN_SECRET=SECRET,
        TURN_TTL="300",
    ) as server:
        yield server


def test_two_peers_exchange_data_through_coturn_with_credentials_from_the_api(
    turn_server: ParleyServer,
) -> None:
    person = Person(turn_server, "relayuser")
    try:
        body = person.http.get("/api/ice-servers").json()
    finally:
        person.close()
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in body["iceServers"]
    ]
    flowed, sdp = aio.run(relay_pair(servers))
    assert candidate_types(sdp) == {"relay"}
    assert flowed


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: turn_credentials(SECRET, 7, -60, time.time()), id="expired"),
        pytest.param(
            lambda: (turn_credentials(SECRET, 7, 600, time.time())[0], "d3Jvbmc="),
            id="wrong-password",
        ),
        pytest.param(
            lambda: turn_credentials("another-secret", 7, 600, time.time()), id="other-secret"
        ),
    ],
)
def test_coturn_refuses_bad_credentials(coturn: LocalTurn, make: Any) -> None:
    username, password = make()
    servers = [RTCIceServer(urls=coturn.urls[0], username=username, credential=password)]
    flowed, sdp = aio.run(relay_pair(servers, timeout=3))
    assert "relay" not in candidate_types(sdp)
    assert not flowed


def test_the_production_config_denies_relaying_to_loopback(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    production = Path(__file__).resolve().parent.parent / "deploy" / "turnserver.conf"
    denied = tuple(
        line.strip()
        for line in production.read_text().splitlines()
        if line.strip().startswith(("denied-peer-ip", "no-multicast-peers"))
    )
    assert any("127.0.0.0-127.255.255.255" in line for line in denied)
    turn = LocalTurn(
        tmp_path_factory.mktemp("coturn-prod"),
        secret=SECRET,
        extra_lines=denied,
        allow_loopback=False,
    )
    turn.start()
    try:
        username, password = turn_credentials(SECRET, 9, 600, time.time())
        servers = [RTCIceServer(urls=turn.urls[0], username=username, credential=password)]
        flowed, sdp = aio.run(relay_pair(servers, timeout=4))
    finally:
        turn.stop()
    assert "relay" in candidate_types(sdp)  # the allocation works...
    assert not flowed  # ...but coturn will not relay to a peer on 127.0.0.1
