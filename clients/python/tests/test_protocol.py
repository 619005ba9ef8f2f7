"""The codec on its own (no gateway): every frame of sections 2 and 4."""

from __future__ import annotations

import pytest

from swarm_client import protocol as p
from swarm_client.errors import ProtocolError

ALL_FRAMES = [
    p.Hello({"name": "worker-1", "protocol": 1, "client": "swarm-python/0.1.0", "heartbeat_ms": 500, "credit": 10}),
    p.Sub(7, "orders.*.created", "billing"),
    p.Sub(8, "orders.>", ""),
    p.Unsub(7),
    p.Pub("orders.eu.created", "application/json", 0, b'{"id":1}'),
    p.Pub("orders.eu.created", "text/plain", 1500, "héllo".encode()),
    p.Send("billing", "application/octet-stream", 0, bytes(range(256))),
    p.Request(2**40, p.TargetKind.TOPIC, "echo.x", 5000, "text/plain", b"hi"),
    p.Request(1, p.TargetKind.NAME, "echo", 0, "", b""),
    p.ClientReply(99, p.Status.OK, 0, "text/plain", b"part"),
    p.ClientReply(99, p.Status.NO_RESPONDER, 1, "", b""),
    p.Register("svc"),
    p.Unregister("svc"),
    p.Credit(2**32 - 1),
    p.Welcome({"protocol": 1, "server": "swarm/0.1.0", "node": 3, "session": "s1", "heartbeat_ms": 1000}),
    p.Msg(7, "orders.eu.created", "<3:1.2>", 0, "application/json", b"{}"),
    p.Deliver("svc", "client/other", 42, "text/plain", b"x"),
    p.Deliver("", "<3:1.2>", 0, "text/plain", b"to the client's address"),
    p.GatewayReply(2**40, p.Status.TIMEOUT, 1, "", b""),
    p.Ping(),
    p.Pong(),
    p.Bye("shutting down"),
    p.Bye(""),
    p.Error(p.ErrorCode.BAD_FIELD, 'PUB: topic "a..b": token 2 is empty', 0),
]


@pytest.mark.parametrize("frame", ALL_FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: p.Frame) -> None:
    parts = p.encode(frame)
    assert parts[0] == b"SW\x01" + bytes([frame.COMMAND])
    assert all(isinstance(part, bytes) for part in parts)
    assert p.decode(parts) == frame


def test_every_command_is_covered() -> None:
    assert {type(f).COMMAND for f in ALL_FRAMES} == set(p.Command)


def test_wire_layout_is_big_endian_one_field_per_frame() -> None:
    parts = p.encode(p.Request(0x0102030405060708, p.TargetKind.NAME, "echo", 0x0A0B0C0D, "text/plain", b"hi"))
    assert parts == [
        b"SW\x01\x06",
        b"\x01\x02\x03\x04\x05\x06\x07\x08",
        b"\x01",
        b"echo",
        b"\x0a\x0b\x0c\x0d",
        b"text/plain",
        b"hi",
    ]
    assert p.encode(p.Error(0x0102, "m", 5)) == [b"SW\x01\x7f", b"\x01\x02", b"m", b"\x00" * 7 + b"\x05"]
    assert p.encode(p.Ping()) == [b"SW\x01\x70"]


def test_extra_trailing_frames_are_ignored() -> None:
    # Section 2; e.g. the reply-to and correlation-id frames of the first publication's PUB.
    parts = p.encode(p.Sub(1, "a.b", "")) + [b"future", b"fields"]
    assert p.decode(parts) == p.Sub(1, "a.b", "")
    assert len(p.encode(p.Pub("t", "", 0, b""))) == 5
    old_pub = p.encode(p.Pub("a.b", "text/plain", 0, b"x")) + [b"me", b"\0" * 7 + b"\3"]
    assert p.decode(old_pub) == p.Pub("a.b", "text/plain", 0, b"x")


def test_welcome_limits() -> None:
    welcome = p.Welcome({"heartbeat_ms": 1000, "max_request_timeout_ms": 60000})
    assert welcome.heartbeat_ms == 1000 and welcome.max_request_timeout_ms == 60000
    assert p.Welcome({"max_request_timeout_ms": True}).max_request_timeout_ms is None
    assert p.Welcome({}).max_request_timeout_ms is None


def test_encode_other_version() -> None:
    assert p.encode(p.Hello({"name": "x", "protocol": 2}), version=2)[0] == b"SW\x02\x01"


@pytest.mark.parametrize(
    "parts, field, text",
    [
        ([], "header", "empty message"),
        ([b"SW\x01"], "header", "3 bytes"),
        ([b"XX\x01\x70"], "header", "does not start with 'SW'"),
        ([b"SW\x01\x02", b"\0\0\0\1", b"a.b"], "queue_group", "2 field frames, expected 3"),
        ([b"SW\x01\x02", b"\0\0\1", b"a.b", b""], "sid", "sid is 3 bytes, expected 4"),
        ([b"SW\x01\x06", b"\0" * 9, b"\0", b"t", b"\0" * 4, b"", b""], "request_id", "9 bytes, expected 8"),
        ([b"SW\x01\x7f", b"\0", b"m", b"\0" * 8], "code", "code is 1 bytes, expected 2"),
        ([b"SW\x01\x08", b"\xff\xfe"], "name", "not valid UTF-8"),
        ([b"SW\x01\x41", b"{not json"], "params", "not valid JSON"),
        ([b"SW\x01\x41", b"[1, 2]"], "params", "not an object"),
        ([b"SW\x01\x72"], "reason", "0 field frames, expected 1"),
    ],
)
def test_malformed_frames(parts: list[bytes], field: str, text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.decode(parts)
    assert info.value.field == field
    assert text in str(info.value)


def test_unknown_command() -> None:
    with pytest.raises(ProtocolError, match="unknown command 0x3e") as info:
        p.decode([b"SW\x01\x3e"])
    assert info.value.command == "0x3e"


def test_other_version_refused_unless_asked() -> None:
    parts = [b"SW\x02\x7f", b"\x00\x01", b"gateway speaks SWP/1, client sent SWP/2", b"\0" * 8]
    with pytest.raises(ProtocolError, match="version 2"):
        p.decode(parts)
    frame = p.decode(parts, any_version=True)
    assert frame == p.Error(p.ErrorCode.VERSION_MISMATCH, "gateway speaks SWP/1, client sent SWP/2", 0)
    assert p.peek_header(parts) == (2, 0x7F)


@pytest.mark.parametrize(
    "frame, text",
    [
        (p.Sub(2**32, "a", ""), "does not fit in u32"),
        (p.Unsub(-1), "does not fit in u32"),
        (p.Request(1, 256, "t", 0, "", b""), "does not fit in u8"),
        (p.Sub(True, "a", ""), "must be an int"),  # type: ignore[arg-type]
        (p.Register(b"name"), "must be a str"),  # type: ignore[arg-type]
        (p.Send("n", "", 0, "text"), "must be bytes"),  # type: ignore[arg-type]
        (p.Hello([1]), "must be a dict"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_values_that_do_not_fit(frame: p.Frame, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        p.encode(frame)


def test_enum_labels() -> None:
    assert p.Status.NO_RESPONDER.label == "no_responder"
    assert p.ErrorCode.VERSION_MISMATCH.label == "version_mismatch"
    assert p.ErrorCode.SLOW_CONSUMER.fatal and p.ErrorCode.SHUTTING_DOWN.fatal and p.ErrorCode.AUTH_FAILED.fatal
    assert not p.ErrorCode.NAME_TAKEN.fatal and not p.ErrorCode.BAD_FIELD.fatal
    assert p.Command.CLIENT_REPLY.wire_name == p.Command.GATEWAY_REPLY.wire_name == "REPLY"
