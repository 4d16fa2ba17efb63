"""The JSON API as a client sees it: accounts, rooms, messages, errors, CSRF and headers."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import create_app
from backend.signaling.protocol import MAX_ID
from harness.flaskapp import Auth


def signed_up(make_client, username: str) -> FlaskClient:  # type: ignore[no-untyped-def]
    c = make_client()
    assert Auth(c).register(username).status_code == 201
    return c


# --- accounts -------------------------------------------------------------------------


def test_register_signs_in_and_me_returns_the_user(client: FlaskClient, auth: Auth) -> None:
    r = auth.register("alice")
    assert r.status_code == 201
    assert r.json == {"id": r.json["id"], "username": "alice", "echo_username": "echo"}
    assert client.get("/api/me").json == r.json


def test_the_echo_bots_username_comes_from_the_servers_config(
    app: Flask, client: FlaskClient, auth: Auth
) -> None:
    app.config["ECHO_USERNAME"] = "parrot"
    assert auth.register("alice").json["echo_username"] == "parrot"
    assert client.get("/api/me").json["echo_username"] == "parrot"
    assert auth.login("alice").json["echo_username"] == "parrot"
    app.config["ECHO_USERNAME"] = ""  # no echo bot on this server
    assert client.get("/api/me").json["echo_username"] is None


def test_me_without_session_is_401_json(client: FlaskClient) -> None:
    r = client.get("/api/me")
    assert r.status_code == 401
    assert r.json == {"error": "sign in first"}


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("ab", "long enough"),
        ("a" * 33, "long enough"),
        ("has space", "long enough"),
        ("émile", "long enough"),
        ("alice", "short"),
        ("", "long enough"),
    ],
)
def test_register_rejects_invalid_input(auth: Auth, username: str, password: str) -> None:
    r = auth.register(username, password)
    assert r.status_code == 400
    assert "error" in r.json


@pytest.mark.parametrize("body", [None, "not json", {"username": 3, "password": "x"}, []])
def test_register_rejects_malformed_bodies(client: FlaskClient, body: object) -> None:
    if isinstance(body, str):
        r = client.post("/api/register", data=body, content_type="application/json")
    else:
        r = client.post("/api/register", json=body)
    assert r.status_code == 400
    assert "error" in r.json


def test_usernames_are_unique_regardless_of_case(make_client) -> None:  # type: ignore[no-untyped-def]
    signed_up(make_client, "alice")
    r = Auth(make_client()).register("ALICE")
    assert r.status_code == 409
    assert r.json == {"error": "that username is taken"}


def test_login_with_right_and_wrong_password(make_client) -> None:  # type: ignore[no-untyped-def]
    signed_up(make_client, "alice")
    c = make_client()
    assert Auth(c).login("alice", "wrong password").status_code == 401
    assert Auth(c).login("nobody", "correct horse").status_code == 401
    r = Auth(c).login("Alice", "correct horse")
    assert r.status_code == 200
    assert r.json["username"] == "alice"
    assert c.get("/api/me").status_code == 200


def test_logout_ends_the_session(client: FlaskClient, auth: Auth) -> None:
    auth.register("alice")
    r = auth.logout()
    assert r.status_code == 204
    assert client.get("/api/me").status_code == 401


def test_password_is_stored_hashed_with_argon2(app: Flask, auth: Auth) -> None:
    auth.register("alice", "correct horse")
    from backend.extensions import db
    from backend.models import User

    with app.app_context():
        user = db.session.query(User).one()
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash


def test_session_cookie_is_httponly_lax_and_secure(auth: Auth) -> None:
    r = auth.register("alice")
    cookies = {c.split("=", 1)[0]: c for c in r.headers.getlist("Set-Cookie")}
    cookie = cookies["parley_session"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie
    # The device cookie (sign-in limits) goes only to the sign-in route, never cross-site.
    device = cookies["parley_device"]
    assert "HttpOnly" in device and "Secure" in device
    assert "SameSite=Strict" in device and "Path=/api/login" in device


def test_a_huge_body_is_refused_with_413_before_it_is_parsed(client: FlaskClient) -> None:
    body = '{"username": "alice", "password": "' + "x" * (20 * 1024 * 1024) + '"}'
    r = client.post("/api/register", data=body, content_type="application/json")
    assert r.status_code == 413
    assert r.json == {"error": "request body too large (at most 64 KiB)"}


# --- rooms ----------------------------------------------------------------------------


def test_open_room_creates_once_and_both_sides_get_the_same_room(make_client) -> None:  # type: ignore[no-untyped-def]
    alice, bob = signed_up(make_client, "alice"), signed_up(make_client, "bob")
    first = alice.post("/api/rooms", json={"username": "bob"})
    assert first.status_code == 201
    assert first.json["peer"]["username"] == "bob"
    again = alice.post("/api/rooms", json={"username": "Bob"})
    assert again.status_code == 200
    from_bob = bob.post("/api/rooms", json={"username": "alice"})
    assert from_bob.status_code == 200
    assert first.json["id"] == again.json["id"] == from_bob.json["id"]
    assert from_bob.json["peer"]["username"] == "alice"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "nobody"}, 404),
        ({"username": "alice"}, 400),
        ({}, 400),
        ({"username": 5}, 400),
    ],
)
def test_open_room_errors(make_client, body: dict, status: int) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    r = alice.post("/api/rooms", json=body)
    assert r.status_code == status
    assert "error" in r.json


def test_rooms_require_sign_in(client: FlaskClient) -> None:
    assert client.get("/api/rooms").status_code == 401
    assert client.post("/api/rooms", json={"username": "bob"}).status_code == 401
    assert client.get("/api/rooms/1/messages").status_code == 401


def test_room_list_has_peer_last_message_unread_and_newest_first(make_client) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    bob = signed_up(make_client, "bob")
    signed_up(make_client, "carol")
    with_bob = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    with_carol = alice.post("/api/rooms", json={"username": "carol"}).json["id"]
    bob.post(f"/api/rooms/{with_bob}/messages", json={"client_id": "b1", "text": "hi alice"})
    bob.post(f"/api/rooms/{with_bob}/messages", json={"client_id": "b2", "text": "you there?"})

    rooms = alice.get("/api/rooms").json["rooms"]
    assert [r["id"] for r in rooms] == [with_bob, with_carol]
    assert rooms[0]["peer"]["username"] == "bob"
    assert rooms[0]["last_message"]["text"] == "you there?"
    assert rooms[0]["unread"] == 2
    assert rooms[1]["last_message"] is None
    assert rooms[1]["unread"] == 0

    last = rooms[0]["last_message"]["id"]
    assert alice.post(f"/api/rooms/{with_bob}/read", json={"message_id": last}).status_code == 200
    assert alice.get("/api/rooms").json["rooms"][0]["unread"] == 0
    # The sender's own messages never count as unread for them.
    assert bob.get("/api/rooms").json["rooms"][0]["unread"] == 0


# --- messages -------------------------------------------------------------------------


def test_messages_are_posted_and_paged_oldest_first(make_client) -> None:  # type: ignore[no-untyped-def]
    alice, bob = signed_up(make_client, "alice"), signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    for i in range(5):
        r = alice.post(f"/api/rooms/{room}/messages", json={"client_id": f"c{i}", "text": f"m{i}"})
        assert r.status_code == 201
        assert r.json["sender"]["username"] == "alice"
        assert r.json["kind"] == "text"
        assert r.json["created_at"].endswith("Z")
    page = bob.get(f"/api/rooms/{room}/messages?limit=3").json["messages"]
    assert [m["text"] for m in page] == ["m2", "m3", "m4"]
    older = bob.get(f"/api/rooms/{room}/messages?limit=3&before={page[0]['id']}").json["messages"]
    assert [m["text"] for m in older] == ["m0", "m1"]


def test_a_client_catching_up_pages_forward_from_what_it_has(make_client) -> None:  # type: ignore[no-untyped-def]
    alice, bob = signed_up(make_client, "alice"), signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    ids = [
        alice.post(
            f"/api/rooms/{room}/messages", json={"client_id": f"c{i}", "text": f"m{i}"}
        ).json["id"]
        for i in range(5)
    ]
    url = f"/api/rooms/{room}/messages"
    page = bob.get(f"{url}?after={ids[0]}&limit=2").json["messages"]
    assert [m["text"] for m in page] == ["m1", "m2"]  # the oldest after it, not the newest page
    rest = bob.get(f"{url}?after={page[-1]['id']}&limit=2").json["messages"]
    assert [m["text"] for m in rest] == ["m3", "m4"]
    assert bob.get(f"{url}?after={ids[-1]}").json["messages"] == []
    both = bob.get(f"{url}?after={ids[0]}&before={ids[-1]}")
    assert both.status_code == 400 and "not both" in both.json["error"]


def test_ids_past_any_column_page_as_empty_or_everything(make_client) -> None:  # type: ignore[no-untyped-def]
    # Found by schemathesis in CI: before=-2**74 reached the database and overflowed (500).
    alice, bob = signed_up(make_client, "alice"), signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    alice.post(f"/api/rooms/{room}/messages", json={"client_id": "c", "text": "hi"})
    url = f"/api/rooms/{room}/messages"
    huge = 22038040789175877632
    for query, texts in [
        (f"before=-{huge}", []),
        (f"before={huge}", ["hi"]),
        (f"after=-{huge}", ["hi"]),
        (f"after={huge}", []),
        (f"limit=-{huge}", ["hi"]),
        (f"limit={huge}", ["hi"]),
    ]:
        r = bob.get(f"{url}?{query}")
        assert r.status_code == 200, (query, r.json)
        assert [m["text"] for m in r.json["messages"]] == texts, query


def test_same_client_id_returns_the_same_message_never_a_second(make_client) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    body = {"client_id": "same-id", "text": "only once"}
    first = alice.post(f"/api/rooms/{room}/messages", json=body)
    second = alice.post(f"/api/rooms/{room}/messages", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json["id"] == second.json["id"]
    assert len(alice.get(f"/api/rooms/{room}/messages").json["messages"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "x", "text": ""},
        {"client_id": "x", "text": "   "},
        {"client_id": "x", "text": "a" * 4001},
        {"client_id": "", "text": "hi"},
        {"client_id": "x" * 65, "text": "hi"},
        {"text": "hi"},
        {"client_id": "x", "text": 5},
    ],
)
def test_invalid_messages_are_refused_with_400(make_client, body: dict) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    r = alice.post(f"/api/rooms/{room}/messages", json=body)
    assert r.status_code == 400
    assert "error" in r.json
    assert alice.get(f"/api/rooms/{room}/messages").json["messages"] == []


def test_a_4000_character_message_is_accepted(make_client) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    r = alice.post(f"/api/rooms/{room}/messages", json={"client_id": "long", "text": "a" * 4000})
    assert r.status_code == 201
    # The body cap leaves room for the largest message a client can send: 4,000 emoji, each
    # escaped as a surrogate pair (12 bytes of JSON).
    body = json.dumps({"client_id": "x" * 64, "text": "\U0001f600" * 4000}, ensure_ascii=True)
    r = alice.post(f"/api/rooms/{room}/messages", data=body, content_type="application/json")
    assert r.status_code == 201
    assert r.json["text"] == "\U0001f600" * 4000


def test_a_room_you_are_not_in_is_404(make_client) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    mallory = signed_up(make_client, "mallory")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    assert mallory.get(f"/api/rooms/{room}/messages").status_code == 404
    r = mallory.post(f"/api/rooms/{room}/messages", json={"client_id": "m", "text": "hi"})
    assert r.status_code == 404
    assert r.json == {"error": "room not found"}
    assert mallory.post(f"/api/rooms/{room}/read", json={"message_id": 1}).status_code == 404
    assert mallory.get("/api/rooms/9999/messages").status_code == 404


def test_bad_paging_parameters_are_400(make_client) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    assert alice.get(f"/api/rooms/{room}/messages?before=abc").status_code == 400


@pytest.mark.parametrize("big", [2**31, MAX_ID, MAX_ID + 1, 10**30])
def test_ids_past_32_bits_are_answered_never_a_server_error(make_client, big: int) -> None:  # type: ignore[no-untyped-def]
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    room = alice.post("/api/rooms", json={"username": "bob"}).json["id"]
    sent = alice.post(f"/api/rooms/{room}/messages", json={"client_id": "c1", "text": "hi"}).json
    assert alice.get(f"/api/rooms/{room}/messages?before={big}").json["messages"] == [sent]
    assert alice.get(f"/api/rooms/{big}/messages").status_code == 404
    r = alice.post(f"/api/rooms/{big}/messages", json={"client_id": "c2", "text": "hi"})
    assert r.status_code == 404
    r = alice.post(f"/api/rooms/{room}/read", json={"message_id": big})
    if big <= MAX_ID:
        assert r.status_code == 200
        assert r.json == {"read_id": big}
    else:
        assert r.status_code == 400
        assert "at most" in r.json["error"]


# --- CSRF and headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost"},
        {"Origin": None, "Referer": "https://evil.example/page"},
        {"Origin": None},
        {"Origin": "null"},
    ],
)
def test_cross_origin_state_changes_are_refused(client: FlaskClient, headers: dict) -> None:
    r = client.post(
        "/api/register", json={"username": "alice", "password": "correct horse"}, headers=headers
    )
    assert r.status_code == 403
    assert "Origin" in r.json["error"]
    assert client.get("/api/me").status_code == 401


def test_same_origin_referer_is_accepted_without_origin(client: FlaskClient) -> None:
    r = client.post(
        "/api/register",
        json={"username": "alice", "password": "correct horse"},
        headers={"Origin": None, "Referer": "https://localhost/#/"},
    )
    assert r.status_code == 201


def test_configured_allowed_origins_replace_the_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'o.db'}",
            "ALLOWED_ORIGINS": ["https://parley.example"],
        }
    )
    from backend.extensions import db

    with app.app_context():
        db.create_all()
    c = app.test_client()
    body = {"username": "alice", "password": "correct horse"}
    own = c.post(
        "/api/register",
        json=body,
        base_url="https://localhost",
        headers={"Origin": "https://localhost"},
    )
    assert own.status_code == 403
    allowed = c.post(
        "/api/register",
        json=body,
        base_url="https://localhost",
        headers={"Origin": "https://parley.example"},
    )
    assert allowed.status_code == 201


def test_security_headers_on_api_responses(client: FlaskClient) -> None:
    r = client.get("/api/me")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "camera=(self)" in r.headers["Permissions-Policy"]
    assert "microphone=(self)" in r.headers["Permissions-Policy"]
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    assert r.headers["Cache-Control"] == "no-store"


def test_unknown_api_route_is_json_404(client: FlaskClient) -> None:
    r = client.get("/api/nothing-here")
    assert r.status_code == 404
    assert "error" in r.json


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/login", '{"username": "a\\u0000b", "password": "correct horse"}'),
        ("/api/register", '{"username": "alice", "password": "correct\\u0000horse"}'),
        ("/api/rooms", '{"username": "bob\\u0000"}'),
        ("/api/rooms/1/messages", '{"client_id": "c", "text": "a\\u0000b"}'),
        ("/api/login", "[" * 30_000 + "]" * 30_000),
        ("/api/push/subscriptions", '{"endpoint": "https://[", "keys": {"p256dh": "'
         + "p" * 87 + '", "auth": "' + "a" * 22 + '"}}'),
    ],
)  # fmt: skip
def test_bodies_no_database_can_store_are_400_not_a_server_error(
    make_client,
    path: str,
    body: str,  # type: ignore[no-untyped-def]
) -> None:
    # NUL in a string (PostgreSQL text refuses it), JSON nested past the parser's recursion,
    # an endpoint urlsplit cannot parse: each was a 500.
    alice = signed_up(make_client, "alice")
    signed_up(make_client, "bob")
    alice.post("/api/rooms", json={"username": "bob"})
    r = alice.post(path, data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.json["error"]


@pytest.mark.parametrize("path", ["/api/rooms/abc/messages", "/api/rooms/-1/read", "/api/nope"])
def test_a_post_to_a_url_the_api_lacks_is_404_not_405(client: FlaskClient, path: str) -> None:
    # Found by Schemathesis: these fell to the PWA's GET-only file route and answered 405.
    r = client.post(path, json={"client_id": "c", "text": "hi", "message_id": 1})
    assert r.status_code == 404
    assert "error" in r.json


def test_the_echo_name_is_reserved_for_the_bot(app: Flask, client: FlaskClient) -> None:
    taken = client.post("/api/register", json={"username": "echo", "password": "guessing123"})
    assert taken.status_code == 409
    bot = client.post(
        "/api/register", json={"username": "echo", "password": app.config["ECHO_PASSWORD"]}
    )
    assert bot.status_code == 201


def test_every_new_user_finds_the_echo_test_room(app: Flask, make_client) -> None:  # type: ignore[no-untyped-def]
    bot = make_client()
    bot.post("/api/register", json={"username": "echo", "password": app.config["ECHO_PASSWORD"]})
    someone = make_client()
    someone.post("/api/register", json={"username": "newbie", "password": "correct horse"})
    rooms = someone.get("/api/rooms").get_json()
    assert [room["peer"]["username"] for room in rooms["rooms"]] == ["echo"]


def test_a_message_with_a_lone_surrogate_is_refused_not_a_server_error(
    client: FlaskClient,
    auth: Auth,
    make_client,  # type: ignore[no-untyped-def]
) -> None:
    other = make_client()
    other.post("/api/register", json={"username": "bob", "password": "correct horse"})
    auth.register()
    room = client.post("/api/rooms", json={"username": "bob"}).json["id"]
    response = client.post(
        f"/api/rooms/{room}/messages",
        data=r'{"client_id": "s", "text": "bad \ud800"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json["error"].startswith("text: ")
