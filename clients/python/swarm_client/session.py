"""The SWP session state machine, without I/O.

:class:`Session` keeps what a client has (subscriptions, registered names,
pending requests, outstanding pings, credit) and turns received frames into
deliveries to *sinks* and frames to send back. The blocking client runs it
on its I/O thread and the asyncio client on its event loop; neither shares
it between threads (only :meth:`Session.next_id` is thread-safe).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from . import protocol as p
from .errors import (
    ClientClosedError,
    GatewayError,
    NotConnectedError,
    ProtocolError,
    RequestError,
    SwarmError,
)
from .messages import Message, Payload, Reply, Responder, encode_payload

__all__ = ["Sink", "Barrier", "SessionEnd", "Received", "Session", "Backoff", "CLIENT_LABEL", "routing_id", "to_ms", "default_name", "ReconnectInfo", "client_reply", "curve_key"]

log = logging.getLogger("swarm_client")

CLIENT_LABEL = "swarm-python/0.1.0"

# Errors that are never about one of this client's requests or subscriptions,
# whatever their context says: unknown_request's context is the correlation id
# of a REPLY we sent, an id the gateway chose, which may equal one of ours.
_NOT_ABOUT_OUR_IDS = frozenset({p.ErrorCode.UNKNOWN_REQUEST})

# Errors that end a session for good: reconnecting cannot help.
_PERMANENT = frozenset({p.ErrorCode.VERSION_MISMATCH, p.ErrorCode.AUTH_FAILED})


class Sink(Protocol):
    """Where a subscription, a registered name or a request gets its items."""

    def put(self, item: Message | Reply) -> None:
        """Take one message or reply."""

    def fail(self, error: SwarmError) -> None:
        """Take an error about this subscription, name or request."""

    def close(self) -> None:
        """No more items will come (the client is closing)."""


class Barrier:
    """Confirms one command: the session sends ``PING``, the command, ``PING``.

    The gateway handles a client's commands in order and answers each ``PING``
    with a ``PONG``, so an ``ERROR`` arriving between the two ``PONG`` frames is
    about that command, whatever its context. ``on_done(errors, failure)`` runs
    once: with the errors seen in the window (empty: the command succeeded), or
    with ``failure`` set when the connection was lost first.
    """

    def __init__(self, on_done: Callable[[list[GatewayError], SwarmError | None], None]) -> None:
        self.on_done = on_done
        self.opened = False
        self.errors: list[GatewayError] = []


@dataclass
class SessionEnd:
    """Why a session ended; ``reconnect`` is False when trying again cannot help."""

    reason: str
    reconnect: bool
    error: SwarmError | None = None


@dataclass
class Received:
    """What handling one received message asks the driver to do."""

    send: list[list[bytes]] = field(default_factory=list)
    opened: bool = False
    end: SessionEnd | None = None


@dataclass(frozen=True)
class ReconnectInfo:
    """What a client's ``on_reconnect`` callback is told once a lost session is back.

    Nothing published during ``down_for`` seconds reached this client
    (at-most-once); its requests pending at the loss failed with
    ``unreachable``.
    """

    reason: str
    down_for: float
    attempts: int
    resubscribed: int
    reregistered: int


@dataclass
class _Subscription:
    sid: int
    pattern: str
    queue_group: str
    sink: Sink


@dataclass
class _Pending:
    request_id: int
    target: str
    sink: Sink
    deadline: float | None


@dataclass
class _PingSlot:
    """One outstanding PING: a heartbeat (no barrier) or one end of a barrier."""

    barrier: Barrier | None = None
    closes: bool = False


class Session:
    """Protocol state of one client, across its reconnects.

    ``on_error`` receives the errors that are about no request or
    subscription of this client, and malformed frames from the gateway.
    ``responder`` answers requests received as ``MSG`` / ``DELIVER``; it is put
    into each :class:`Message`. ``inbox`` takes the messages sent to the
    client's own address (``DELIVER`` with an empty name); without one they
    are dropped (and logged).
    """

    def __init__(
        self,
        name: str,
        *,
        heartbeat_ms: int,
        credit: int | None,
        token: str | None,
        on_error: Callable[[SwarmError], None],
        responder: Responder,
        inbox: Sink | None = None,
    ) -> None:
        if credit is not None and not 0 < credit < 1 << 32:
            raise ValueError("credit must be between 1 and 2**32-1")
        if heartbeat_ms <= 0:
            raise ValueError("heartbeat_ms must be positive")
        self.name = name
        self.requested_heartbeat_ms = heartbeat_ms
        self.credit = credit
        self.token = token
        self._on_error = on_error
        self._responder = responder
        self.inbox = inbox
        self._ids = itertools.count(1)  # one counter for sids and request ids: ERROR contexts stay unambiguous
        self._ids_lock = threading.Lock()
        self.subscriptions: dict[int, _Subscription] = {}
        self.names: dict[str, Sink] = {}
        self._pending: dict[int, _Pending] = {}
        # What this session gave up: messages for them may still be on their way.
        self._released_sids: set[int] = set()
        self._released_names: set[str] = set()
        self._pings: deque[_PingSlot] = deque()
        self.welcome: p.Welcome | None = None
        self.is_open = False
        self.epoch = 0  # counts sessions; credit from messages of an older session is not granted again
        self._to_grant = 0

    # --- identifiers and timing ---------------------------------------------

    def next_id(self) -> int:
        """A new sid or request id (thread-safe; never 0, never reused)."""
        with self._ids_lock:
            value = next(self._ids)
        if value >= 1 << 32:
            raise OverflowError("this client has used up its 2**32-1 ids; create a new client")
        return value

    @property
    def heartbeat_s(self) -> float:
        """The heartbeat interval in force (the gateway's answer once welcomed)."""
        agreed = self.welcome.heartbeat_ms if self.welcome else None
        return (agreed or self.requested_heartbeat_ms) / 1000.0

    @property
    def liveness_s(self) -> float:
        """Silence after which the peer is considered gone (section 7)."""
        return 3 * self.heartbeat_s

    @property
    def max_request_timeout_ms(self) -> int | None:
        """The gateway's longest request timeout (and that of a timeout of 0), once welcomed."""
        return self.welcome.max_request_timeout_ms if self.welcome else None

    def effective_timeout_ms(self, timeout_ms: int) -> int:
        """The timeout the gateway applies to a ``REQUEST`` giving ``timeout_ms``:
        0 and longer ones become its maximum (0 when unknown: none)."""
        limit = self.max_request_timeout_ms
        if limit is None:
            return timeout_ms
        return limit if timeout_ms == 0 else min(timeout_ms, limit)

    @property
    def has_pending_requests(self) -> bool:
        """Whether any request of this client waits for its final reply."""
        return bool(self._pending)

    # --- handshake ----------------------------------------------------------

    def hello(self) -> list[bytes]:
        """Start a new session on a fresh connection: the ``HELLO`` to send."""
        self.is_open = False
        self.welcome = None
        self._pings.clear()
        self._to_grant = 0
        self._released_sids.clear()
        self._released_names.clear()
        params: dict[str, Any] = {
            "name": self.name,
            "protocol": p.PROTOCOL_VERSION,
            "client": CLIENT_LABEL,
            "heartbeat_ms": self.requested_heartbeat_ms,
        }
        if self.credit is not None:
            params["credit"] = self.credit
        if self.token is not None:
            params["token"] = self.token
        return p.encode(p.Hello(params))

    def _replay(self) -> list[list[bytes]]:
        """What a new session must be told again: subscriptions and names (section 7)."""
        frames = [p.encode(p.Sub(s.sid, s.pattern, s.queue_group)) for s in self.subscriptions.values()]
        frames += [p.encode(p.Register(name)) for name in self.names]
        return frames

    # --- commands from the application ----------------------------------

    def subscribe(self, sid: int, pattern: str, queue_group: str, sink: Sink) -> list[bytes] | None:
        """Record a subscription; the ``SUB`` to send now, or None while
        disconnected (it is sent on reconnect)."""
        frames = p.encode(p.Sub(sid, pattern, queue_group))
        self.subscriptions[sid] = _Subscription(sid, pattern, queue_group, sink)
        return frames if self.is_open else None

    def unsubscribe(self, sid: int) -> list[bytes] | None:
        """Forget a subscription; the ``UNSUB`` to send, if any."""
        sub = self.subscriptions.pop(sid, None)
        if sub is None:
            return None
        self._released_sids.add(sid)
        sub.sink.close()
        return p.encode(p.Unsub(sid)) if self.is_open else None

    def forget_subscription(self, sid: int) -> None:
        """Drop a subscription the gateway refused (nothing to send)."""
        self.subscriptions.pop(sid, None)

    def register(self, name: str, sink: Sink) -> list[bytes] | None:
        """Record a registered name; the ``REGISTER`` to send now, if connected."""
        if name in self.names:
            raise ValueError(f"name {name!r} is already registered by this client")
        frames = p.encode(p.Register(name))
        self.names[name] = sink
        return frames if self.is_open else None

    def unregister(self, name: str) -> list[bytes] | None:
        """Release a name; the ``UNREGISTER`` to send, if any."""
        sink = self.names.pop(name, None)
        if sink is None:
            return None
        self._released_names.add(name)
        sink.close()
        return p.encode(p.Unregister(name)) if self.is_open else None

    def forget_name(self, name: str) -> None:
        """Drop a name the gateway refused (nothing to send)."""
        self.names.pop(name, None)

    def request(
        self,
        request_id: int,
        target: str,
        to_name: bool,
        timeout_ms: int,
        content_type: str,
        payload: bytes,
        sink: Sink,
        now: float,
    ) -> list[bytes]:
        """Record a pending request; the ``REQUEST`` to send.

        Raises :class:`NotConnectedError` while disconnected: a request is
        never queued for a later session (it may not be idempotent). A local
        deadline (the timeout the gateway applies, see
        :meth:`effective_timeout_ms`, plus one liveness period) guards against
        an answer that never comes.
        """
        if not self.is_open:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        kind = p.TargetKind.NAME if to_name else p.TargetKind.TOPIC
        frames = p.encode(p.Request(request_id, kind, target, timeout_ms, content_type, payload))
        effective_ms = self.effective_timeout_ms(timeout_ms)
        deadline = now + effective_ms / 1000.0 + self.liveness_s + 1.0 if effective_ms else None
        self._pending[request_id] = _Pending(request_id, target, sink, deadline)
        return frames

    def cancel_request(self, request_id: int) -> None:
        """Stop waiting for a request's replies (later ones are dropped)."""
        self._pending.pop(request_id, None)

    def ping(self, barrier: Barrier | None = None, closes: bool = False) -> list[bytes]:
        """A ``PING`` to send, remembered so that its ``PONG`` can be matched."""
        self._pings.append(_PingSlot(barrier, closes))
        return p.encode(p.Ping())

    def confirm(self, command: list[bytes], barrier: Barrier) -> list[list[bytes]]:
        """``PING``, ``command``, ``PING``: the messages to send back to back."""
        return [self.ping(barrier), command, self.ping(barrier, closes=True)]

    def consumed(self, epoch: int) -> list[bytes] | None:
        """The application has taken one message of session ``epoch``; the
        ``CREDIT`` to send once half the credit has been used."""
        if self.credit is None or epoch != self.epoch or not self.is_open:
            return None
        self._to_grant += 1
        if self._to_grant < max(1, self.credit // 2):
            return None
        grant, self._to_grant = self._to_grant, 0
        return p.encode(p.Credit(grant))

    def expire(self, now: float) -> None:
        """Fail the requests whose local deadline passed."""
        overdue = [r for r in self._pending.values() if r.deadline is not None and r.deadline <= now]
        for pending in overdue:
            del self._pending[pending.request_id]
            pending.sink.fail(RequestError(p.Status.TIMEOUT, pending.target, "no answer from the gateway"))

    def next_deadline(self) -> float | None:
        """The earliest local request deadline, if any."""
        deadlines = [r.deadline for r in self._pending.values() if r.deadline is not None]
        return min(deadlines) if deadlines else None

    # --- the end of a session -------------------------------------------

    def connection_lost(self, reason: str) -> None:
        """The session is over (the client will reconnect): pending requests
        fail with ``unreachable`` and unconfirmed commands with
        :class:`NotConnectedError`; subscriptions and names are kept for the
        next session."""
        self.is_open = False
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.sink.fail(RequestError(p.Status.UNREACHABLE, request.target, reason))
        self._abort_barriers(NotConnectedError(f"connection lost before the gateway confirmed: {reason}"))

    def close(self, cause: SwarmError | None) -> None:
        """The client is done: everything waiting fails or ends."""
        self.is_open = False
        failure = ClientClosedError("the client is closed")
        failure.__cause__ = cause
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.sink.fail(failure)
        self._abort_barriers(failure)
        for sub in self.subscriptions.values():
            sub.sink.close()
        for sink in self.names.values():
            sink.close()
        if self.inbox is not None:
            self.inbox.close()
        self.subscriptions.clear()
        self.names.clear()

    def _abort_barriers(self, failure: SwarmError) -> None:
        slots, self._pings = self._pings, deque()
        for slot in slots:
            if slot.barrier is not None and slot.closes:
                slot.barrier.on_done(slot.barrier.errors, failure)

    # --- received frames ------------------------------------------------

    def receive(self, parts: Sequence[bytes]) -> Received:
        """Handle one message from the gateway."""
        result = Received()
        try:
            frame = p.decode(parts, any_version=not self.is_open)
        except ProtocolError as exc:
            self._on_error(exc)  # a malformed frame from the gateway is reported, then ignored
            return result
        if not self.is_open:
            self._receive_handshake(frame, result)
        else:
            self._receive_open(frame, result)
        return result

    def _receive_handshake(self, frame: p.Frame, result: Received) -> None:
        if isinstance(frame, p.Welcome):
            self.welcome = frame
            self.is_open = True
            self.epoch += 1
            result.opened = True
            result.send.extend(self._replay())
        elif isinstance(frame, p.Error):
            error = _gateway_error(frame)
            # shutting_down may pass (the gateway restarts); anything else
            # refusing our HELLO will refuse the next one too.
            retry = frame.code == p.ErrorCode.SHUTTING_DOWN
            result.end = SessionEnd(f"HELLO refused: {error}", reconnect=retry, error=error)
        elif isinstance(frame, p.Bye):
            result.end = SessionEnd(f"gateway said BYE during the handshake ({frame.reason or 'no reason'})", reconnect=True)
        elif isinstance(frame, p.Ping):
            result.send.append(p.encode(p.Pong()))
        else:
            log.debug("ignoring %s before WELCOME", frame.COMMAND.wire_name)

    def _receive_open(self, frame: p.Frame, result: Received) -> None:
        if isinstance(frame, p.Msg):
            self._deliver_msg(frame, result)
        elif isinstance(frame, p.Deliver):
            self._deliver_to_name(frame, result)
        elif isinstance(frame, p.GatewayReply):
            self._deliver_reply(frame)
        elif isinstance(frame, p.Ping):
            result.send.append(p.encode(p.Pong()))
        elif isinstance(frame, p.Pong):
            self._pong()
        elif isinstance(frame, p.Error):
            self._error(frame, result)
        elif isinstance(frame, p.Bye):
            result.end = SessionEnd(f"gateway said BYE ({frame.reason or 'no reason'})", reconnect=True)
        else:
            name = frame.COMMAND.wire_name
            self._on_error(ProtocolError(f"unexpected {name} from the gateway on an open session", name))

    def _message(self, frame: p.Msg | p.Deliver) -> Message:
        common = dict(
            payload=frame.payload,
            content_type=frame.content_type,
            sender=frame.sender,
            correlation_id=frame.correlation_id,
            _responder=self._responder,
            _epoch=self.epoch,
        )
        if isinstance(frame, p.Msg):
            return Message(topic=frame.topic, sid=frame.sid, **common)  # type: ignore[arg-type]
        return Message(name=frame.name, **common)  # type: ignore[arg-type]

    def _deliver_msg(self, frame: p.Msg, result: Received) -> None:
        sub = self.subscriptions.get(frame.sid)
        if sub is None:
            if frame.sid in self._released_sids:  # it crossed our UNSUB
                log.debug("dropping MSG for ended subscription %d (topic %s)", frame.sid, frame.topic)
            else:
                self._on_error(ProtocolError(f"MSG for sid {frame.sid}, which this client never subscribed: dropped", "MSG", "sid"))
            self._return_credit(result)  # nobody will consume it
            return
        sub.sink.put(self._message(frame))

    def _deliver_to_name(self, frame: p.Deliver, result: Received) -> None:
        sink = self.names.get(frame.name) if frame.name else self.inbox
        if sink is None:
            if not frame.name:
                log.debug("dropping DELIVER to this client's address: no inbox")
            elif frame.name in self._released_names:  # it crossed our UNREGISTER
                log.debug("dropping DELIVER for released name %r", frame.name)
            else:
                self._on_error(ProtocolError(f"DELIVER to name {frame.name!r}, which this client does not hold: dropped", "DELIVER", "name"))
            self._return_credit(result)
            return
        sink.put(self._message(frame))

    def _return_credit(self, result: Received) -> None:
        grant = self.consumed(self.epoch)
        if grant is not None:
            result.send.append(grant)

    def _deliver_reply(self, frame: p.GatewayReply) -> None:
        pending = self._pending.get(frame.request_id)
        if pending is None:
            log.debug("dropping REPLY for request %d nobody waits for", frame.request_id)
            return
        status = _status(frame.status)
        final = bool(frame.final) or status != p.Status.OK  # a non-ok status is always final
        if final:
            del self._pending[frame.request_id]
        pending.sink.put(Reply(frame.request_id, status, final, frame.content_type, frame.payload))

    def _pong(self) -> None:
        if not self._pings:
            log.debug("PONG without an outstanding PING")
            return
        slot = self._pings.popleft()
        if slot.barrier is None:
            return
        if slot.closes:
            slot.barrier.on_done(slot.barrier.errors, None)
        else:
            slot.barrier.opened = True

    def _error(self, frame: p.Error, result: Received) -> None:
        error = _gateway_error(frame)
        if error.fatal:
            self._on_error(error)
            result.end = SessionEnd(
                f"fatal error from the gateway: {error}",
                reconnect=frame.code not in _PERMANENT,
                error=error,
            )
            return
        front = self._pings[0] if self._pings else None
        if front is not None and front.barrier is not None and front.closes and front.barrier.opened:
            front.barrier.errors.append(error)
            return
        if frame.context and frame.code not in _NOT_ABOUT_OUR_IDS:
            pending = self._pending.pop(frame.context, None)
            if pending is not None:
                pending.sink.fail(error)
                return
            sub = self.subscriptions.pop(frame.context, None)
            if sub is not None:
                sub.sink.fail(error)  # the gateway refused the subscription: it is gone
                return
        self._on_error(error)


def _status(value: int) -> p.Status | int:
    try:
        return p.Status(value)
    except ValueError:
        return value


def _gateway_error(frame: p.Error) -> GatewayError:
    try:
        code: p.ErrorCode | int = p.ErrorCode(frame.code)
    except ValueError:
        code = frame.code
    return GatewayError(code, frame.message, frame.context)


class Backoff:
    """Randomized reconnect back-off (section 7): from 100 ms, doubling to 10 s.

    Each wait is drawn from the upper half of the current step, so that
    clients cut off together do not all come back at the same instant.
    """

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self._first = first
        self._cap = cap
        self._step = first

    def next(self) -> float:
        """The next wait, in seconds."""
        delay = random.uniform(self._step / 2, self._step)
        self._step = min(self._step * 2, self._cap)
        return delay

    def reset(self) -> None:
        """A session opened: the next loss starts from the first step again."""
        self._step = self._first


def routing_id(name: str) -> bytes:
    """The routing id a client named ``name`` uses: ``c/`` + name (section 1).

    Raises ``ValueError`` for a name the gateway would refuse (1..255 bytes,
    no spaces or control characters) or that makes the routing id longer
    than 255 bytes.
    """
    encoded = name.encode("utf-8")
    if not encoded:
        raise ValueError("the client name must not be empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"the client name {name!r} has a space or a control character")
    rid = b"c/" + encoded
    if len(rid) > 255:
        raise ValueError(f"the client name is {len(encoded)} bytes; at most 253 fit in the routing id")
    return rid


def to_ms(seconds: float | None, what: str) -> int:
    """Seconds (None: none) as the u32 milliseconds of the wire; at least 1 ms
    when positive, so that a short timeout is not taken for "none"."""
    if seconds is None:
        return 0
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    ms = max(1, round(seconds * 1000)) if seconds > 0 else 0
    if ms >= 1 << 32:
        raise ValueError(f"{what} of {seconds} s does not fit in 32 bits of milliseconds")
    return ms


def default_name() -> str:
    """A client name unique enough for one host: ``python-<pid>-<random>``."""
    return f"python-{os.getpid()}-{os.urandom(3).hex()}"


def client_reply(
    message: Message, payload: Payload, final: bool, status: p.Status, content_type: str | None
) -> list[bytes]:
    """The ``REPLY`` answering ``message``, encoded. A non-ok status is sent
    final and without payload (section 5)."""
    if not message.is_request:
        raise ValueError("this message is not a request (its correlation id is 0)")
    if status != p.Status.OK:
        return p.encode(p.ClientReply(message.correlation_id, status, 1, "", b""))
    content_type, data = encode_payload(payload, content_type)
    return p.encode(p.ClientReply(message.correlation_id, p.Status.OK, 1 if final else 0, content_type, data))


def curve_key(key: str | bytes) -> bytes:
    """A Z85 CURVE key as the bytes ZeroMQ's socket options take."""
    return key.encode("ascii") if isinstance(key, str) else key
