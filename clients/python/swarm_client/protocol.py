"""Codec for SWP/1, the Swarm wire protocol (docs/protocol.md, sections 2 and 4).

Every SWP message is one ZeroMQ multipart message: a 4-byte header
(``b"SW"``, the protocol version, the command code) followed by one frame per
field. Integers are big-endian; strings are UTF-8 without terminator; a
frame's size is its length.

:func:`encode` turns a frame object into the list of ``bytes`` to send;
:func:`decode` turns received frames back into a frame object, raising
:class:`~swarm_client.errors.ProtocolError` on anything malformed. The codec
has no state and does no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar, Sequence, Union

from .errors import ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "MAGIC",
    "Command",
    "Status",
    "ErrorCode",
    "TargetKind",
    "Hello",
    "Sub",
    "Unsub",
    "Pub",
    "Send",
    "Request",
    "ClientReply",
    "Register",
    "Unregister",
    "Credit",
    "Welcome",
    "Msg",
    "Deliver",
    "GatewayReply",
    "Ping",
    "Pong",
    "Bye",
    "Error",
    "Frame",
    "encode",
    "decode",
    "peek_header",
]

PROTOCOL_VERSION = 1
MAGIC = b"SW"


class Command(IntEnum):
    """Command codes: ``0x01..0x3f`` from clients, ``0x40..0x7f`` from the
    gateway; ``PING``, ``PONG``, ``BYE`` and ``ERROR`` go both ways."""

    HELLO = 0x01
    SUB = 0x02
    UNSUB = 0x03
    PUB = 0x04
    SEND = 0x05
    REQUEST = 0x06
    CLIENT_REPLY = 0x07
    REGISTER = 0x08
    UNREGISTER = 0x09
    CREDIT = 0x0A
    WELCOME = 0x41
    MSG = 0x42
    DELIVER = 0x43
    GATEWAY_REPLY = 0x44
    PING = 0x70
    PONG = 0x71
    BYE = 0x72
    ERROR = 0x7F

    @property
    def wire_name(self) -> str:
        """The command's name in the specification (both reply codes are ``REPLY``)."""
        return "REPLY" if self in (Command.CLIENT_REPLY, Command.GATEWAY_REPLY) else self.name


class Status(IntEnum):
    """Status of a ``REPLY`` (the runtime's ``AskStatus``, section 5)."""

    OK = 0
    TIMEOUT = 1
    DEAD_AGENT = 2
    MAILBOX_FULL = 3
    SHUTTING_DOWN = 4
    NO_RESPONDER = 5
    EXPIRED = 6
    UNREACHABLE = 7

    @property
    def label(self) -> str:
        """The status's name in the specification, e.g. ``"no_responder"``."""
        return self.name.lower()


class ErrorCode(IntEnum):
    """Codes of ``ERROR`` (section 6)."""

    VERSION_MISMATCH = 1
    NO_SESSION = 2
    AUTH_FAILED = 3
    NAME_TAKEN = 4
    BAD_FRAME = 5
    BAD_FIELD = 6
    TOO_LARGE = 7
    UNKNOWN_SID = 8
    UNKNOWN_REQUEST = 9
    NO_SUCH_NAME = 10
    MAILBOX_FULL = 11
    DEAD_AGENT = 12
    SLOW_CONSUMER = 13
    BAD_STATE = 14
    SHUTTING_DOWN = 15

    @property
    def label(self) -> str:
        """The error's name in the specification, e.g. ``"bad_field"``."""
        return self.name.lower()

    @property
    def fatal(self) -> bool:
        """Whether the gateway ends the session after this error (``name_taken``
        is fatal only as the answer to ``HELLO``)."""
        return self in _FATAL_ERRORS


_FATAL_ERRORS = frozenset(
    {ErrorCode.VERSION_MISMATCH, ErrorCode.AUTH_FAILED, ErrorCode.SLOW_CONSUMER, ErrorCode.SHUTTING_DOWN}
)


class TargetKind(IntEnum):
    """What the target of a ``REQUEST`` is."""

    TOPIC = 0
    NAME = 1


# Wire types of the fields (section 2). A frame class declares its fields in
# wire order with these annotations; encode() and decode() read the layout
# from them, so each field is stated once.
U8 = int
U16 = int
U32 = int
U64 = int
Str = str
Json = dict  # a JSON object
Bytes = bytes

_INT_SIZES = {"U8": 1, "U16": 2, "U32": 4, "U64": 8}


@dataclass(frozen=True, slots=True)
class _FrameBase:
    """Common base of the frame classes: ``COMMAND`` and the fields, every one
    of them on the wire (there are no optional fields in SWP/1)."""

    COMMAND: ClassVar[Command]


# --- client -> gateway -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(_FrameBase):
    """``HELLO``: opens a session. ``params`` is the JSON object of section 4
    (``name`` and ``protocol`` required)."""

    COMMAND = Command.HELLO
    params: Json


@dataclass(frozen=True, slots=True)
class Sub(_FrameBase):
    """``SUB``: subscribe ``pattern`` under the client-chosen ``sid``."""

    COMMAND = Command.SUB
    sid: U32
    pattern: Str
    queue_group: Str = ""


@dataclass(frozen=True, slots=True)
class Unsub(_FrameBase):
    """``UNSUB``: end the subscription ``sid``."""

    COMMAND = Command.UNSUB
    sid: U32


@dataclass(frozen=True, slots=True)
class Pub(_FrameBase):
    """``PUB``: publish on a topic (never a request: requests go through ``REQUEST``)."""

    COMMAND = Command.PUB
    topic: Str
    content_type: Str
    ttl_ms: U32
    payload: Bytes


@dataclass(frozen=True, slots=True)
class Send(_FrameBase):
    """``SEND``: send to the agent or client holding ``name``."""

    COMMAND = Command.SEND
    name: Str
    content_type: Str
    ttl_ms: U32
    payload: Bytes


@dataclass(frozen=True, slots=True)
class Request(_FrameBase):
    """``REQUEST``: a request answered by one or more ``REPLY`` with ``request_id``."""

    COMMAND = Command.REQUEST
    request_id: U64
    target_kind: U8
    target: Str
    timeout_ms: U32
    content_type: Str
    payload: Bytes


@dataclass(frozen=True, slots=True)
class ClientReply(_FrameBase):
    """``REPLY`` from a client (code ``0x07``): answers the request that
    arrived as ``MSG`` / ``DELIVER`` with ``correlation_id``."""

    COMMAND = Command.CLIENT_REPLY
    correlation_id: U64
    status: U8
    final: U8
    content_type: Str
    payload: Bytes


@dataclass(frozen=True, slots=True)
class Register(_FrameBase):
    """``REGISTER``: take a name, so that ``SEND`` and requests to it reach this client."""

    COMMAND = Command.REGISTER
    name: Str


@dataclass(frozen=True, slots=True)
class Unregister(_FrameBase):
    """``UNREGISTER``: release a name."""

    COMMAND = Command.UNREGISTER
    name: Str


@dataclass(frozen=True, slots=True)
class Credit(_FrameBase):
    """``CREDIT``: allow ``messages`` more ``MSG`` / ``DELIVER`` frames (section 8)."""

    COMMAND = Command.CREDIT
    messages: U32


# --- gateway -> client -------------------------------------------------------


def _positive_int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True, slots=True)
class Welcome(_FrameBase):
    """``WELCOME``: the session is open; ``params`` is the JSON object of section 4."""

    COMMAND = Command.WELCOME
    params: Json

    @property
    def heartbeat_ms(self) -> int | None:
        """The heartbeat interval both sides use, if the gateway gave a usable one."""
        return _positive_int(self.params, "heartbeat_ms")

    @property
    def max_request_timeout_ms(self) -> int | None:
        """The timeout of a ``REQUEST`` that gives 0, and the longest one, if given."""
        return _positive_int(self.params, "max_request_timeout_ms")


@dataclass(frozen=True, slots=True)
class Msg(_FrameBase):
    """``MSG``: a message on a topic subscribed with ``sid`` (a request when
    ``correlation_id`` is not 0)."""

    COMMAND = Command.MSG
    sid: U32
    topic: Str
    sender: Str
    correlation_id: U64
    content_type: Str
    payload: Bytes


@dataclass(frozen=True, slots=True)
class Deliver(_FrameBase):
    """``DELIVER``: a message sent to a name this client registered (``name``),
    or to the client's own address (``name`` empty)."""

    COMMAND = Command.DELIVER
    name: Str
    sender: Str
    correlation_id: U64
    content_type: Str
    payload: Bytes


@dataclass(frozen=True, slots=True)
class GatewayReply(_FrameBase):
    """``REPLY`` from the gateway (code ``0x44``): an answer to this client's ``REQUEST``."""

    COMMAND = Command.GATEWAY_REPLY
    request_id: U64
    status: U8
    final: U8
    content_type: Str
    payload: Bytes


# --- both ways ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping(_FrameBase):
    """``PING``: "I am alive"; answered with ``PONG``."""

    COMMAND = Command.PING


@dataclass(frozen=True, slots=True)
class Pong(_FrameBase):
    """``PONG``: the answer to ``PING``."""

    COMMAND = Command.PONG


@dataclass(frozen=True, slots=True)
class Bye(_FrameBase):
    """``BYE``: the session ends now."""

    COMMAND = Command.BYE
    reason: Str = ""


@dataclass(frozen=True, slots=True)
class Error(_FrameBase):
    """``ERROR``: ``code`` (see :class:`ErrorCode`), a message, and the request
    id or sid it is about (0: none)."""

    COMMAND = Command.ERROR
    code: U16
    message: Str = ""
    context: U64 = 0


Frame = Union[
    Hello, Sub, Unsub, Pub, Send, Request, ClientReply, Register, Unregister, Credit,
    Welcome, Msg, Deliver, GatewayReply, Ping, Pong, Bye, Error,
]

_CLASSES: dict[int, type[_FrameBase]] = {
    cls.COMMAND: cls
    for cls in (
        Hello, Sub, Unsub, Pub, Send, Request, ClientReply, Register, Unregister, Credit,
        Welcome, Msg, Deliver, GatewayReply, Ping, Pong, Bye, Error,
    )
}

# Each command's fields in wire order, as (attribute, wire type), from the annotations.
_LAYOUTS: dict[int, tuple[tuple[str, str], ...]] = {
    code: tuple((f.name, str(f.type)) for f in fields(cls)) for code, cls in _CLASSES.items()
}


def _type_error(command: str, name: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(f"{command}: {name} must be {expected}, not {type(value).__name__}", command, name)


def _encode_field(command: str, name: str, kind: str, value: Any) -> bytes:
    size = _INT_SIZES.get(kind)
    if size is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(command, name, "an int", value)
        if not 0 <= value < 1 << (8 * size):
            raise ProtocolError(f"{command}: {name} {value} does not fit in {kind.lower()}", command, name)
        return value.to_bytes(size, "big")
    if kind == "Str":
        if not isinstance(value, str):
            raise _type_error(command, name, "a str", value)
        return value.encode("utf-8")
    if kind == "Json":
        if not isinstance(value, dict):
            raise _type_error(command, name, "a dict (a JSON object)", value)
        return json.dumps(value, separators=(",", ":")).encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _type_error(command, name, "bytes", value)
    return bytes(value)


def encode(frame: Frame, version: int = PROTOCOL_VERSION) -> list[bytes]:
    """Encode ``frame`` as the list of ZeroMQ frames to send.

    ``version`` exists to test a peer's version check; leave it alone
    otherwise. Raises :class:`ProtocolError` when a field does not fit its
    wire type (e.g. a sid over 2**32-1).
    """
    command = frame.COMMAND
    return [MAGIC + bytes((version, command))] + [
        _encode_field(command.wire_name, name, kind, getattr(frame, name)) for name, kind in _LAYOUTS[command]
    ]


def _decode_field(command: str, name: str, kind: str, data: bytes) -> Any:
    size = _INT_SIZES.get(kind)
    if size is not None:
        if len(data) != size:
            raise ProtocolError(
                f"{command}: {name} is {len(data)} bytes, expected {size} ({kind.lower()})", command, name
            )
        return int.from_bytes(data, "big")
    if kind == "Bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{command}: {name} is not valid UTF-8 ({exc.reason} at byte {exc.start})", command, name) from None
    if kind == "Str":
        return text
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{command}: {name} is not valid JSON ({exc})", command, name) from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{command}: {name} is JSON but not an object", command, name)
    return value


def peek_header(parts: Sequence[bytes]) -> tuple[int, int]:
    """Return ``(version, command code)`` of a message after checking the
    header's size and magic; raises :class:`ProtocolError` otherwise."""
    if not parts:
        raise ProtocolError("empty message (no header frame)", None, "header")
    header = bytes(parts[0])
    if len(header) != 4:
        raise ProtocolError(f"header is {len(header)} bytes, expected 4", None, "header")
    if header[:2] != MAGIC:
        raise ProtocolError(f"header does not start with 'SW' (got {header[:2]!r})", None, "header")
    return header[2], header[3]


def decode(parts: Sequence[bytes], *, any_version: bool = False) -> Frame:
    """Decode one received multipart message into a frame object.

    Frames beyond the command's fields are ignored (section 2). A version
    other than 1 is refused unless ``any_version`` is set (a client must
    accept an ``ERROR`` of any version during the handshake; its layout is
    assumed to be version 1's). Raises :class:`ProtocolError` on a bad
    header, an unknown command, too few frames, a field of the wrong size,
    invalid UTF-8 or invalid JSON.
    """
    version, code = peek_header(parts)
    try:
        command = Command(code)
    except ValueError:
        raise ProtocolError(f"unknown command 0x{code:02x}", f"0x{code:02x}", None) from None
    if version != PROTOCOL_VERSION and not any_version:
        raise ProtocolError(
            f"{command.wire_name}: protocol version {version}, this client speaks SWP/{PROTOCOL_VERSION}",
            command.wire_name,
            "header",
        )
    layout = _LAYOUTS[command]
    fields_in = parts[1:]
    if len(fields_in) < len(layout):
        missing = layout[len(fields_in)][0]
        raise ProtocolError(
            f"{command.wire_name}: {len(fields_in)} field frames, expected {len(layout)} (missing {missing})",
            command.wire_name,
            missing,
        )
    values = {
        name: _decode_field(command.wire_name, name, kind, bytes(data)) for (name, kind), data in zip(layout, fields_in)
    }
    return _CLASSES[command](**values)  # type: ignore[return-value]
