"""Web Push delivery against a push endpoint on loopback that decrypts like a browser (RFC 8291)."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask import Flask
from flask.testing import FlaskClient

from backend.extensions import db
from backend.models import PushSubscription
from backend.push import sender
from backend.signaling.protocol import PushCallOffer, PushCallOver
from harness.flaskapp import Auth


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's half of a push subscription: its keys and what it received."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(raw), "auth": b64url(self.auth)},
        }


class PushService:
    """A push service on 127.0.0.1: answers with a chosen status and keeps what came."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.status: dict[str, int] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                service.received.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(service.status.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def decrypt(self, device: Device, body: bytes) -> dict:
        return json.loads(
            http_ece.decrypt(body, private_key=device.private_key, auth_secret=device.auth)
        )


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    service.thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


def verify_vapid(headers: dict[str, str], expected_key: str, audience: str) -> dict:
    """Check the VAPID JWT is signed by the server's key and return its claims."""
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == expected_key
    header_b64, claims_b64, sig_b64 = fields["t"].split(".")
    sig = unb64url(sig_b64)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(expected_key))
    key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64url(claims_b64))
    assert claims["aud"] == audience
    return claims


def test_push_key_is_a_p256_point(client: FlaskClient) -> None:
    key = client.get("/api/push/key").json["publicKey"]
    raw = unb64url(key)
    assert len(raw) == 65 and raw[0] == 4


def test_vapid_key_is_made_once_and_kept(app: Flask, client: FlaskClient) -> None:
    first = client.get("/api/push/key").json["publicKey"]
    from backend import create_app

    again = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert again.instance_path == app.instance_path
    with again.test_client() as c:
        assert c.get("/api/push/key").json["publicKey"] == first


def test_subscriptions_need_sign_in_and_valid_keys(client: FlaskClient, auth: Auth) -> None:
    device = Device("https://push.example/abc")
    assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 401
    auth.register("alice")
    bad = device.subscription()
    bad["keys"]["auth"] = "x"
    assert client.post("/api/push/subscriptions", json=bad).status_code == 400
    assert client.post("/api/push/subscriptions", json={"endpoint": "ftp://x"}).status_code == 400
    assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 201
    assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 200


def test_a_call_push_arrives_encrypted_and_signed_and_skips_devices_with_a_socket(
    app: Flask, client: FlaskClient, auth: Auth, push_service: PushService
) -> None:
    user_id = auth.register("bob").json["id"]
    phone, laptop = Device(push_service.url("/sub/phone")), Device(push_service.url("/sub/laptop"))
    for device in (phone, laptop):
        assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 201
    key = client.get("/api/push/key").json["publicKey"]

    alice = {"id": 7, "username": "alice"}
    payload = PushCallOffer.model_validate(
        {"call_id": "c1", "room_id": 3, "from": alice, "media": "video"}
    )
    with app.app_context():
        sender().notify(user_id, payload, skip={laptop.endpoint}, wait=True)

    assert [path for path, _, _ in push_service.received] == ["/sub/phone"]
    _, headers, body = push_service.received[0]
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["ttl"] == "60"
    assert headers["urgency"] == "high"
    assert b"alice" not in body
    # What pwa/sw.js reads to show the incoming call: who, which call and room, voice or video,
    # and whether it rings for a group call.
    assert push_service.decrypt(phone, body) == {
        "type": "call_offer",
        "call_id": "c1",
        "room_id": 3,
        "from": alice,
        "media": "video",
        "group": False,
    }
    verify_vapid(headers, key, push_service.url("").rstrip("/"))


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_deleted(
    app: Flask, client: FlaskClient, auth: Auth, push_service: PushService, status: int
) -> None:
    user_id = auth.register("bob").json["id"]
    gone, alive = Device(push_service.url("/sub/gone")), Device(push_service.url("/sub/alive"))
    for device in (gone, alive):
        client.post("/api/push/subscriptions", json=device.subscription())
    push_service.status["/sub/gone"] = status
    with app.app_context():
        sender().notify(user_id, PushCallOver(type="call_cancelled", call_id="c1"), wait=True)
        endpoints = db.session.scalars(db.select(PushSubscription.endpoint)).all()
    assert endpoints == [alive.endpoint]


def test_a_failing_push_service_keeps_the_subscription(
    app: Flask, client: FlaskClient, auth: Auth, push_service: PushService
) -> None:
    user_id = auth.register("bob").json["id"]
    device = Device(push_service.url("/sub/flaky"))
    client.post("/api/push/subscriptions", json=device.subscription())
    push_service.status["/sub/flaky"] = 500
    with app.app_context():
        sender().notify(user_id, PushCallOver(type="call_timeout", call_id="c1"), wait=True)
        assert db.session.scalar(db.select(db.func.count(PushSubscription.id))) == 1


def test_unsubscribe_removes_only_your_own_device(
    client: FlaskClient,
    auth: Auth,
    make_client,
    push_service: PushService,  # type: ignore[no-untyped-def]
) -> None:
    auth.register("bob")
    device = Device(push_service.url("/sub/bob"))
    client.post("/api/push/subscriptions", json=device.subscription())
    mallory = make_client()
    Auth(mallory).register("mallory")
    assert (
        mallory.delete("/api/push/subscriptions", json={"endpoint": device.endpoint}).status_code
        == 204
    )
    assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 200
    assert (
        client.delete("/api/push/subscriptions", json={"endpoint": device.endpoint}).status_code
        == 204
    )
    assert client.post("/api/push/subscriptions", json=device.subscription()).status_code == 201
