"""Session setup and the gateway's handling of bad input (sections 2, 3, 6, 9)."""

from __future__ import annotations

import json
import signal

import pytest
import zmq

from swarm_client import Client, ConnectTimeoutError, ErrorCode, GatewayError
from swarm_client import protocol as p

from conftest import unique, wait_until


def test_welcome_fields(connect) -> None:
    client = connect(heartbeat_ms=1000)
    welcome = client.welcome
    assert welcome["protocol"] == 1
    assert isinstance(welcome["server"], str) and welcome["server"]
    assert isinstance(welcome["node"], int) and not isinstance(welcome["node"], bool)
    assert "session" in welcome
    assert isinstance(welcome["heartbeat_ms"], int) and welcome["heartbeat_ms"] >= 1000
    assert welcome["max_payload"] == 1 << 20
    assert welcome["max_outbound"] == 10_000
    assert not welcome["credit"]
    assert welcome["max_request_timeout_ms"] == 60_000  # the gateway's default
    assert client.max_request_timeout == 60.0


def test_welcome_says_credit_is_on(connect) -> None:
    assert connect(credit=16).welcome["credit"]


def test_welcome_heartbeat_is_the_larger_of_both(start_gateway, connect) -> None:
    gw = start_gateway("--heartbeat-ms", "200")
    assert connect(endpoint=gw.endpoint, heartbeat_ms=100).welcome["heartbeat_ms"] == 200
    assert connect(endpoint=gw.endpoint, heartbeat_ms=500).welcome["heartbeat_ms"] == 500


def test_version_mismatch_names_both_versions(raw) -> None:
    dealer = raw()
    dealer.send(p.encode(p.Hello({"name": unique("v2"), "protocol": 2}), version=2))
    parts = dealer.recv()
    assert p.peek_header(parts) == (1, p.Command.ERROR), "the answer is a version-1 ERROR"
    error = p.decode(parts)
    assert error.code == ErrorCode.VERSION_MISMATCH
    assert "SWP/1" in error.message and "SWP/2" in error.message
    # Not admitted: a command after it is still "before HELLO".
    dealer.send_frame(p.Sub(1, "a.b", ""))
    assert dealer.expect(p.Error, skip=(p.Ping, p.Bye)).code == ErrorCode.NO_SESSION


def test_command_before_hello_is_no_session(raw) -> None:
    dealer = raw()
    dealer.send_frame(p.Pub("a.b", "text/plain", 0, b"x"))
    assert dealer.expect(p.Error).code == ErrorCode.NO_SESSION


def test_second_hello_over_the_same_routing_id_starts_a_new_empty_session(raw, connect) -> None:
    # Section 3 calls a second HELLO on a live session bad_state, but also says a
    # HELLO over the same routing id is a reconnect; the gateway cannot tell
    # them apart, so the reconnect rule is the one that holds.
    name = unique("twice")
    dealer = raw(routing_id=f"c/{name}".encode())
    first = dealer.hello(name)
    topic = unique("old")
    dealer.send_frame(p.Sub(1, topic, ""))
    second = dealer.hello(name)
    assert second.params["session"] != first.params["session"]
    dealer.send_frame(p.Sub(2, f"{topic}-marker", ""))
    dealer.send_frame(p.Ping())
    dealer.expect(p.Pong)
    publisher = connect()
    publisher.publish(topic, "to the old session")
    publisher.publish(f"{topic}-marker", "marker")
    msg = dealer.expect(p.Msg)
    assert (msg.sid, msg.payload) == (2, b"marker"), "the old session's subscription is gone"


def test_hello_name_held_by_another_session_is_name_taken(raw) -> None:
    name = unique("dup")
    raw(routing_id=f"c/{name}".encode()).hello(name)
    other = raw(routing_id=b"c/" + unique("other").encode())
    other.send_frame(p.Hello({"name": name, "protocol": 1}))
    assert other.expect(p.Error, skip=(p.Ping,)).code == ErrorCode.NAME_TAKEN


def test_hello_without_a_name_is_refused(raw) -> None:
    dealer = raw()
    dealer.send_frame(p.Hello({"protocol": 1}))
    error = dealer.expect(p.Error)
    assert error.code == ErrorCode.BAD_FIELD and "name" in error.message


@pytest.mark.parametrize(
    "parts, command, field",
    [
        ([b"SW\x01\x3e"], None, None),  # unknown command
        ([b"SW\x01\x02", b"\0\0\0\1"], "SUB", None),  # too few frames
        ([b"SW\x01\x02", b"\0\0\1", b"a.b", b""], "SUB", "sid"),  # a field of the wrong size
        ([b"SW\x01\x08", b"\xff\xfe\xfd"], "REGISTER", None),  # invalid UTF-8
        ([b"SW\x01\x06", b"\0" * 8, b"\0\0", b"echo", b"\0" * 4, b"", b""], "REQUEST", None),  # u8 of 2 bytes
    ],
    ids=["unknown-command", "too-few-frames", "wrong-size", "bad-utf8", "wrong-size-u8"],
)
def test_garbage_frames_get_bad_frame_and_harm_nobody(raw, connect, parts, command, field) -> None:
    bystander = connect()
    dealer = raw()
    dealer.hello(unique("garbage"))
    dealer.send(parts)
    error = dealer.expect(p.Error)
    assert error.code == ErrorCode.BAD_FRAME, error
    if command:
        assert command in error.message
    if field:
        assert field in error.message
    dealer.send_frame(p.Ping())
    dealer.expect(p.Pong)
    assert bystander.request("echo.x", "still fine").text() == "still fine"


@pytest.mark.parametrize("parts", [[b"garbage"], [b"SW\x01"], [b"XX\x01\x70"]], ids=["junk", "short-header", "bad-magic"])
def test_bad_header_gets_bad_frame(raw, connect, parts) -> None:
    dealer = raw()
    dealer.hello(unique("header"))
    dealer.send(parts)
    assert dealer.expect(p.Error).code == ErrorCode.BAD_FRAME
    assert connect().request("echo.x", "alive").text() == "alive"


def test_token_auth(start_gateway, connect) -> None:
    gw = start_gateway("--token", "s3cret")
    client = connect(endpoint=gw.endpoint, token="s3cret")
    assert client.request("echo.x", "in").text() == "in"
    for token in ("wrong", None):
        with pytest.raises(GatewayError) as info:
            Client(gw.endpoint, unique("intruder"), token=token)
        assert info.value.code == ErrorCode.AUTH_FAILED
        assert info.value.fatal


def test_sigterm_says_bye_and_exits_0(start_gateway, raw) -> None:
    gw = start_gateway()
    dealer = raw(gw.endpoint)
    dealer.hello(unique("bye"))
    gw.process.send_signal(signal.SIGTERM)
    frame = dealer.expect(p.Bye, skip=(p.Ping, p.Error))
    assert isinstance(frame.reason, str)
    wait_until(lambda: not gw.alive(), 10.0, "the gateway to exit")
    assert gw.process.returncode == 0, gw.stderr()


def test_hello_unknown_keys_are_ignored(raw) -> None:
    dealer = raw()
    dealer.send([b"SW\x01\x01", json.dumps({"name": unique("keys"), "protocol": 1, "future_key": [1]}).encode()])
    dealer.expect(p.Welcome)


def curve_keypair() -> tuple[bytes, bytes]:
    """A Z85 key pair without '#': '#' is a Z85 character, but also starts a
    comment in the allowed-keys file (section 9)."""
    while True:
        public, secret = zmq.curve_keypair()
        if b"#" not in public + secret:
            return public, secret


def test_curve(start_gateway, connect, tmp_path) -> None:
    server_public, server_secret = curve_keypair()
    client_public, client_secret = curve_keypair()
    stranger_public, stranger_secret = curve_keypair()
    (tmp_path / "server.key").write_bytes(server_secret + b"\n")
    (tmp_path / "allowed.keys").write_bytes(b"# clients allowed in\n" + client_public + b"\n")
    gw = start_gateway(
        "--curve-secret-key-file", str(tmp_path / "server.key"),
        "--curve-allowed-keys-file", str(tmp_path / "allowed.keys"),
    )
    client = connect(
        endpoint=gw.endpoint,
        curve_server_key=server_public, curve_public_key=client_public, curve_secret_key=client_secret,
    )
    assert client.request("echo.x", "sealed").text() == "sealed"
    # A key not on the list, or no CURVE at all, never gets a session.
    with pytest.raises(ConnectTimeoutError):
        Client(gw.endpoint, unique("stranger"), connect_timeout=1.0,
               curve_server_key=server_public, curve_public_key=stranger_public, curve_secret_key=stranger_secret)
    with pytest.raises(ConnectTimeoutError):
        Client(gw.endpoint, unique("plain"), connect_timeout=1.0)
