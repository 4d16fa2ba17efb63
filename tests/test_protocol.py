"""The wire protocol's validation: what a client may send, and what it gets for anything else."""

from __future__ import annotations

import functools
import json
import operator
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, create_model

from backend import chat
from backend.cli import protocol_js_command
from backend.signaling import protocol, wirejs
from backend.signaling.protocol import ClientMessage as ClientUnion
from backend.signaling.protocol import ProtocolError, parse
from backend.signaling.wirejs import WIRE_JS
from harness.servers import ROOT

CALL = "0f8fad5b-d9cb-469f-a165-70867728950e"

VALID = [
    {"type": "ping"},
    {"type": "ping", "t": 12},
    {"type": "chat_message", "room_id": 1, "client_id": "c", "text": "hi"},
    {"type": "call_offer", "call_id": CALL, "room_id": 1, "to": 2, "media": "audio", "sdp": "v=0"},
    {"type": "call_answer", "call_id": CALL, "sdp": "v=0"},
    {"type": "ice_candidate", "call_id": CALL, "candidate": None},
    {
        "type": "ice_candidate",
        "call_id": CALL,
        "candidate": {"candidate": "candidate:1", "sdpMid": "0"},
    },
    {"type": "call_description", "call_id": CALL, "description": {"type": "offer", "sdp": "v=0"}},
    {"type": "call_media", "call_id": CALL, "audio": False, "video": True},
    {"type": "call_rejected", "call_id": CALL, "reason": "busy"},
    {"type": "call_end", "call_id": CALL.upper()},
    {"type": "call_resume", "call_id": CALL},
    {"type": "group_call_start", "call_id": CALL, "room_id": 4, "media": "video"},
    {"type": "group_call_join", "call_id": CALL},
    {"type": "group_call_leave", "call_id": CALL},
    {
        "type": "sfu_description",
        "call_id": CALL,
        "pc": "publish",
        "description": {"type": "offer", "sdp": "v=0"},
    },
    {"type": "sfu_candidate", "call_id": CALL, "pc": "subscribe", "candidate": None},
    {
        "type": "call_report",
        "call_id": CALL,
        "path": "relayed",
        "transport": "tls",
        "rtt_ms": None,
        "loss": 0,
        "reconnects": 0,
        "duration_s": 0,
    },
]


@pytest.mark.parametrize("frame", VALID, ids=lambda f: f["type"])
def test_every_client_message_type_parses(frame: dict[str, Any]) -> None:
    message = parse(json.dumps(frame))
    assert message.type == frame["type"]


def test_group_call_signals_name_the_participant_they_are_for() -> None:
    frame = {"type": "ice_candidate", "call_id": CALL, "candidate": None, "to": 9}
    assert parse(json.dumps(frame)).to == 9  # type: ignore[union-attr]
    with pytest.raises(ProtocolError) as refused:
        parse(json.dumps({**frame, "to": "9"}))  # ids are strictly typed
    assert refused.value.reason == "bad_message"


def test_call_ids_are_normalised_to_lower_case() -> None:
    message = parse(json.dumps({"type": "call_end", "call_id": CALL.upper()}))
    assert message.call_id == CALL  # type: ignore[union-attr]


def test_a_forged_from_is_dropped() -> None:
    frame = {"type": "call_answer", "call_id": CALL, "sdp": "v=0", "from": {"id": 1}}
    message = parse(json.dumps(frame))
    assert "from" not in message.model_dump(by_alias=True)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "bad_json"),
        ("[]", "bad_message"),
        ('"ping"', "bad_message"),
        ("{}", "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "call_offer_please"}', "unknown_type"),
        ('{"type": "ping", "t": {"nested": 1}}', "bad_message"),
        ('{"type": "chat_message", "room_id": "1", "client_id": "c", "text": "x"}', "bad_message"),
        ('{"type": "chat_message", "room_id": 1, "client_id": "c", "text": ""}', "bad_message"),
        ('{"type": "chat_message", "room_id": 0, "client_id": "c", "text": "x"}', "bad_message"),
        ('{"type": "chat_message", "room_id": 1, "client_id": "", "text": "x"}', "bad_message"),
        (
            json.dumps(
                {"type": "chat_message", "room_id": 1, "client_id": "c", "text": "x" * 4001}
            ),
            "bad_message",
        ),
        (json.dumps({"type": "call_answer", "call_id": CALL, "sdp": "x" * 40000}), "bad_message"),
        ('{"type": "call_end", "call_id": "not-a-uuid"}', "bad_message"),
        (
            '{"type": "call_offer", "call_id": "'
            + CALL
            + '", "room_id": 1, "to": 2, "media": "screen", "sdp": "v"}',
            "bad_message",
        ),
        ('{"type": "call_rejected", "call_id": "' + CALL + '", "reason": "bored"}', "bad_message"),
        (
            '{"type": "call_description", "call_id": "'
            + CALL
            + '", "description": {"type": "rollback", "sdp": "v"}}',
            "bad_message",
        ),
        (
            '{"type": "ice_candidate", "call_id": "' + CALL + '", "candidate": {"candidate": 5}}',
            "bad_message",
        ),
        ('{"type": "call_media", "call_id": "' + CALL + '", "audio": true}', "bad_message"),
        (
            '{"type": "call_media", "call_id": "' + CALL + '", "audio": "off", "video": true}',
            "bad_message",
        ),
        (
            '{"type": "call_media", "call_id": "' + CALL + '", "audio": 0, "video": 1}',
            "bad_message",
        ),
    ],
)
def test_malformed_frames_raise_protocol_errors_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse(text)
    assert refused.value.reason == reason
    assert refused.value.message


def test_binary_frames_are_refused() -> None:
    with pytest.raises(ProtocolError) as refused:
        parse(b'{"type": "ping"}')
    assert refused.value.reason == "bad_message"


def test_server_messages_serialise_with_from_and_without_empty_optionals() -> None:
    user = protocol.User(id=1, username="alice")
    offer = protocol.CallOffer.model_validate(
        {"call_id": CALL, "room_id": 1, "from": user, "media": "video", "sdp": "v=0"}
    )
    assert json.loads(protocol.dump(offer))["from"] == {"id": 1, "username": "alice"}
    assert json.loads(protocol.dump(protocol.error("busy", "in a call"))) == {
        "type": "error",
        "reason": "busy",
        "message": "in a call",
    }
    assert json.loads(protocol.dump(protocol.Pong())) == {"type": "pong"}


def test_a_relayed_media_state_carries_the_senders_identity_and_nothing_forged() -> None:
    sent = parse(
        json.dumps(
            {"type": "call_media", "call_id": CALL, "audio": False, "video": True, "from": {}}
        )
    )
    assert isinstance(sent, protocol.CallMediaSend)
    relayed = protocol.relayed(sent, protocol.User(id=2, username="bob"))
    assert json.loads(protocol.dump(relayed)) == {
        "type": "call_media",
        "call_id": CALL,
        "audio": False,
        "video": True,
        "from": {"id": 2, "username": "bob"},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(protocol.CLIENT_TYPES) + ["x", ""])},
    optional={
        "call_id": st.one_of(st.just(CALL), json_values),
        "room_id": json_values,
        "to": json_values,
        "sdp": json_values,
        "candidate": json_values,
        "text": json_values,
        "client_id": json_values,
        "media": st.one_of(st.sampled_from(["audio", "video"]), json_values),
        "description": json_values,
        "audio": st.one_of(st.booleans(), json_values),
        "video": st.one_of(st.booleans(), json_values),
        "reason": json_values,
        "t": json_values,
    },
)


@pytest.mark.timeout(600)  # bounded by the examples, not a clock (a loaded 2-core machine: 25 s)
@settings(max_examples=500, deadline=None)
@given(st.one_of(frames.map(json.dumps), st.text(max_size=200)))
def test_parse_returns_a_message_or_raises_protocol_error_for_anything(text: str) -> None:
    try:
        message = parse(text)
    except ProtocolError as refused:
        assert refused.reason in {"bad_json", "bad_message", "unknown_type"}
    else:
        assert message.type in protocol.CLIENT_TYPES


_models = TypeAdapter(protocol.ClientMessage)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@pytest.mark.timeout(600)  # bounded by the examples, not a clock (a loaded 2-core machine: 123 s)
@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        frames.map(json.dumps),
        frames.map(lambda f: "\n " + json.dumps(f, indent=1) + " \t"),
        frames.map(lambda f: json.dumps(f) + " x"),
        frames.map(lambda f: json.dumps(f, ensure_ascii=False).replace(" ", "\x01")),
        st.text(max_size=200),
    )
)
def test_parse_accepts_exactly_what_json_and_the_message_models_accept(text: str) -> None:
    # parse() has a one-pass fast path (pydantic reads the JSON itself); it must not accept a frame
    # the plain reading (Python's json, then the models) would refuse, nor read one differently.
    assume(not _SURROGATE_ESCAPE.search(text))  # lone surrogates are refused on purpose
    try:
        expected = _models.validate_python(json.loads(text))
    except (ValueError, RecursionError):
        expected = None
    try:
        got = parse(text)
    except ProtocolError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    "text",
    [
        r'{"type": "\ud800"}',
        r'{"type": "chat_message", "room_id": 1, "client_id": "c", "text": "a\udfffb"}',
        r'{"type": "ping", "t": "\uD83D"}',
    ],
)
def test_lone_surrogates_are_refused_before_they_reach_a_reply(text: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse(text)
    assert refused.value.reason == "bad_message"
    json.dumps(protocol.error(refused.value.reason, refused.value.message).model_dump())
    protocol.dump(protocol.error(refused.value.reason, refused.value.message))


def test_a_real_emoji_escape_pair_is_fine() -> None:
    message = parse(
        r'{"type": "chat_message", "room_id": 1, "client_id": "c", "text": "\ud83d\ude00"}'
    )
    assert message.text == "\U0001f600"  # type: ignore[union-attr]


# --- pwa/js/wire.js, the browser's copy, generated from these models ---------------------------


def _wire_constant(text: str, name: str) -> Any:
    """Read `export const NAME = frozen(<JSON>);` from the text of wire.js."""
    match = re.search(rf"^export const {name} = frozen\((.*?)\);$", text, re.MULTILINE | re.DOTALL)
    assert match, f"{name} not found in wire.js"
    return json.loads(match.group(1))


def test_the_committed_wire_js_is_what_the_generator_writes_from_the_models() -> None:
    assert WIRE_JS.read_text(encoding="utf-8") == wirejs.render()


def test_wire_js_gives_the_browser_the_servers_limits_and_frame_types() -> None:
    text = WIRE_JS.read_text(encoding="utf-8")
    assert _wire_constant(text, "LIMITS") == protocol.LIMITS
    assert _wire_constant(text, "LIMITS")["MAX_TEXT"] == chat.MAX_TEXT == 4000
    assert set(_wire_constant(text, "CLIENT_TYPES")) == protocol.CLIENT_TYPES
    required = _wire_constant(text, "REQUIRED")
    assert required["client"]["chat_message"] == ["type", "room_id", "client_id", "text"]
    # What the server sends carries every field the table promises, optional ones omitted.
    pong = json.loads(protocol.dump(protocol.Pong()))
    assert set(required["server"]["pong"]) == set(pong) == {"type"}
    error = json.loads(protocol.dump(protocol.error("busy", "in a call")))
    assert set(required["server"]["error"]) == set(error)
    assert "@property {string} [ref_type]" in text  # left out when empty, never null


def test_every_client_type_is_a_member_of_the_client_union() -> None:
    parsed = {parse(json.dumps(frame)).type for frame in VALID}
    assert parsed == protocol.CLIENT_TYPES


def test_a_changed_model_makes_the_check_fail_until_the_file_is_written_again(
    tmp_path: Path,
) -> None:
    committed = tmp_path / "wire.js"
    committed.write_text(WIRE_JS.read_text(encoding="utf-8"), encoding="utf-8")
    runner = CliRunner()
    assert (
        runner.invoke(protocol_js_command, ["--check", "--output", str(committed)]).exit_code == 0
    )

    # A chat message grows a required field: the generated file changes and the check fails.
    urgent = create_model("ChatSend", __base__=protocol.ChatSend, urgent=(bool, ...))
    members = [urgent if m is protocol.ChatSend else m for m in get_args(get_args(ClientUnion)[0])]
    changed = wirejs.render(client=functools.reduce(operator.or_, members))
    assert '"chat_message": ["type", "room_id", "client_id", "text", "urgent"]' in changed
    assert wirejs.stale(committed, changed)
    committed.write_text(changed, encoding="utf-8")
    result = runner.invoke(protocol_js_command, ["--check", "--output", str(committed)])
    assert result.exit_code == 1
    assert "stale" in result.output and "flask --app backend protocol-js" in result.output

    # Writing it again from the models makes the check pass.
    assert runner.invoke(protocol_js_command, ["--output", str(committed)]).exit_code == 0
    assert (
        runner.invoke(protocol_js_command, ["--check", "--output", str(committed)]).exit_code == 0
    )


@pytest.mark.timeout(300)
def test_the_lint_steps_command_runs_on_a_fresh_clone_without_flask_app(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env["PARLEY_INSTANCE"] = str(tmp_path / "instance")  # a fresh clone has no instance folder
    stale = tmp_path / "wire.js"
    stale.write_text("// an old wire.js\n", encoding="utf-8")
    flask = [sys.executable, "-m", "flask", "--app", "backend", "protocol-js", "--check"]
    fresh = subprocess.run(flask, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert fresh.returncode == 0, fresh.stderr
    old = subprocess.run(
        [*flask, "--output", str(stale)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert old.returncode == 1
    assert "wire.js is stale" in old.stderr
