"""What the blocking and the asyncio client share, apart from how they wait.

:class:`ClientBase` holds the settings, the :class:`~swarm_client.session.Session`,
the reconnect bookkeeping and the timers of the I/O loop; the inbox and
reply-stream bases hold the delivery logic. ``client.py`` and ``aio.py`` add
the waiting: threads and queues there, coroutines here.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import zmq

from . import protocol as p
from .errors import ClientClosedError, ConnectTimeoutError, InboxClosedError, RequestError, SwarmError
from .messages import Message, Payload, Reply, encode_payload
from .session import (
    Backoff,
    ReconnectInfo,
    Session,
    SessionEnd,
    curve_key,
    default_name,
    routing_id,
    to_ms,
)

log = logging.getLogger("swarm_client")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7400"

END = object()
"""Put in an inbox's queue: nothing more will come."""

Callback = Callable[[Message], Any]
ErrorCallback = Callable[[SwarmError], Any]


class InboxBase:
    """Messages of a subscription, a registered name or the client's address:
    queued for the application, or handed to a callback on the client's
    callback thread / task. Subclasses add ``get`` and ``_run_callback``
    and say which queue they use (``_new_queue``)."""

    _new_queue: Callable[[], Any]

    def __init__(self, client: Any, callback: Callback | None, on_error: ErrorCallback | None) -> None:
        self._client = client
        self._callback = callback
        self._on_error = on_error
        self._queue = self._new_queue()
        self._ended = False

    # Sink interface, called where the I/O runs.
    def put(self, item: Message | Reply) -> None:
        if self._callback is None:
            self._queue.put_nowait(item)
        else:
            self._client._dispatcher.call(self._run_callback, item)

    def fail(self, error: SwarmError) -> None:
        if self._callback is None:
            self._queue.put_nowait(error)
            self._queue.put_nowait(END)  # the gateway refused it: nothing more will come
        else:
            self._client._report(error, self._on_error)

    def close(self) -> None:
        self._queue.put_nowait(END)

    def _check_get(self) -> None:
        if self._callback is not None:
            raise RuntimeError("messages go to the callback; get() is for inboxes without one")
        if self._ended:
            raise InboxClosedError("ended")

    def _take(self, item: Any) -> Message:
        """What ``get`` returns for a dequeued item (or raises)."""
        if item is END:
            self._ended = True
            raise InboxClosedError("ended")
        if isinstance(item, SwarmError):
            raise item
        self._client._consumed(item)
        return item


class SubscriptionBase(InboxBase):
    def __init__(
        self,
        client: Any,
        sid: int,
        pattern: str,
        queue_group: str,
        callback: Callback | None,
        on_error: ErrorCallback | None,
    ) -> None:
        super().__init__(client, callback, on_error)
        self.sid = sid
        self.pattern = pattern
        self.queue_group = queue_group

    def __repr__(self) -> str:
        return f"Subscription(sid={self.sid}, pattern={self.pattern!r}, queue_group={self.queue_group!r})"


class RegistrationBase(InboxBase):
    def __init__(self, client: Any, name: str, callback: Callback | None, on_error: ErrorCallback | None) -> None:
        super().__init__(client, callback, on_error)
        self.name = name

    def __repr__(self) -> str:
        return f"Registration(name={self.name!r})"


class ReplySink:
    """Replies of one request, in a queue the asker reads."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def put(self, item: Message | Reply) -> None:
        assert isinstance(item, Reply)
        self.queue.put_nowait(item)

    def fail(self, error: SwarmError) -> None:
        self.queue.put_nowait(error)

    def close(self) -> None:
        self.queue.put_nowait(ClientClosedError("the client is closed"))


class ReplyStreamBase:
    """The state of one request's reply stream."""

    def __init__(self, client: Any, request_id: int, target: str) -> None:
        self._client = client
        self.request_id = request_id
        self.target = target
        self._done = False

    def _take(self, item: Reply | SwarmError) -> Reply:
        """The reply to yield for a dequeued item (or the error to raise)."""
        if isinstance(item, SwarmError):
            self._done = True
            raise item
        if item.final:
            self._done = True
            if not item.ok:
                raise RequestError(item.status, self.target)
        return item

    def close(self) -> None:
        """Stop waiting for replies (later ones are dropped)."""
        if not self._done:
            self._done = True
            self._client._cancel_request(self.request_id)


class ClientBase:
    """Settings, session and I/O-loop bookkeeping shared by both clients.

    Subclasses set ``_context_class`` and ``_inbox_class``, implement
    ``_respond``, ``_consumed`` and ``_cancel_request``, and provide
    ``_dispatcher`` (it runs callbacks); ``_init_io`` ends the constructor.
    """

    _context_class: type[zmq.Context]
    _inbox_class: type[InboxBase]
    _dispatcher: Any

    def __init__(
        self,
        endpoint: str | None = None,
        name: str | None = None,
        *,
        heartbeat_ms: int = 1000,
        credit: int | None = None,
        token: str | None = None,
        curve_server_key: str | bytes | None = None,
        curve_public_key: str | bytes | None = None,
        curve_secret_key: str | bytes | None = None,
        connect_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
        on_error: ErrorCallback | None = None,
        on_reconnect: Callable[[ReconnectInfo], Any] | None = None,
        on_message: Callback | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        # Under swarmd, the environment says where to connect and as whom (docs/protocol.md).
        self.endpoint = endpoint if endpoint is not None else os.environ.get("SWARM_GATEWAY", DEFAULT_ENDPOINT)
        self.name = name if name is not None else os.environ.get("SWARM_NAME") or default_name()
        if token is None:
            token = os.environ.get("SWARM_TOKEN") or None
        self._routing_id = routing_id(self.name)
        curve = (curve_server_key, curve_public_key, curve_secret_key)
        if any(key is not None for key in curve) and not all(key is not None for key in curve):
            raise ValueError("CURVE needs curve_server_key, curve_public_key and curve_secret_key together")
        self._curve = curve if curve_server_key is not None else None
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self.on_error = on_error
        self.on_reconnect = on_reconnect
        self.inbox = self._inbox_class(self, on_message, None)
        self._session = Session(
            self.name,
            heartbeat_ms=heartbeat_ms,
            credit=credit,
            token=token,
            on_error=self._report,
            responder=self._respond,
            inbox=self.inbox,
        )
        self._own_context = context is None
        self._context = context if context is not None else self._context_class()
        self._closing = False  # close() was called
        self._io_done = False  # the I/O loop has ended
        self._last_send = 0.0
        self._session_started = 0.0
        self._backoff = Backoff()
        self._lost: SessionEnd | None = None  # the loss not yet followed by a new session
        self._lost_at = 0.0
        self._attempts = 0
        self._init_io()

    def _init_io(self) -> None:
        """The subclass's own set-up, at the end of the constructor."""

    # --- properties -----------------------------------------------------

    @property
    def welcome(self) -> dict[str, Any]:
        """The last ``WELCOME`` object (protocol, server, node, session, heartbeat_ms, ...)."""
        welcome = self._session.welcome
        return dict(welcome.params) if welcome else {}

    @property
    def max_request_timeout(self) -> float | None:
        """The gateway's longest request timeout in seconds (from ``WELCOME``):
        a request with ``timeout=0`` gets it, and longer ones are lowered to it.
        None before the first session or if the gateway did not say."""
        ms = self._session.max_request_timeout_ms
        return ms / 1000.0 if ms is not None else None

    @property
    def closed(self) -> bool:
        """Whether the client was closed or its session ended for good."""
        return self._closing or self._io_done

    # --- frames of the application's commands ---------------------------

    @staticmethod
    def _pub_frames(topic: str, payload: Payload, content_type: str | None, ttl: float | None) -> list[bytes]:
        content_type, data = encode_payload(payload, content_type)
        return p.encode(p.Pub(topic, content_type, to_ms(ttl, "ttl"), data))

    @staticmethod
    def _send_frames(name: str, payload: Payload, content_type: str | None, ttl: float | None) -> list[bytes]:
        content_type, data = encode_payload(payload, content_type)
        return p.encode(p.Send(name, content_type, to_ms(ttl, "ttl"), data))

    # --- errors ---------------------------------------------------------

    def _report(self, error: SwarmError, handler: ErrorCallback | None = None) -> None:
        """Hand an error to its handler on the callback thread / task, or log it."""
        handler = handler or self.on_error
        if handler is not None:
            self._dispatcher.call(handler, error)
        else:
            log.warning("swarm_client %s: %s", self.name, error)

    # --- the I/O loop ---------------------------------------------------

    def _open_socket(self) -> Any:
        """A DEALER with this client's routing id (and CURVE keys), connecting."""
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.ROUTING_ID, self._routing_id)
        if self._curve is not None:
            server, public, secret = self._curve
            socket.curve_serverkey = curve_key(server)
            socket.curve_publickey = curve_key(public)
            socket.curve_secretkey = curve_key(secret)
        try:
            socket.connect(self.endpoint)
        except zmq.ZMQError as exc:
            socket.close(0)
            raise SwarmError(f"cannot connect to {self.endpoint!r}: {exc}") from None
        self._session_started = time.monotonic()
        return socket

    def _io_tick(
        self, now: float, last_receive: float, handshake_deadline: float, ping: Callable[[], None] | None
    ) -> tuple[SessionEnd | None, float]:
        """The timers of one turn of the I/O loop: ends the session on a
        missing ``WELCOME`` or heartbeat, expires requests, calls ``ping``
        when a heartbeat is due (None: not now). Returns the end, if any,
        and when to wake up next."""
        session = self._session
        if not session.is_open:
            if now >= handshake_deadline:
                reason = f"no WELCOME from the gateway within {handshake_deadline - self._session_started:.1f} s"
                return SessionEnd(reason, reconnect=True, error=ConnectTimeoutError(f"{self.endpoint}: {reason}")), now
            return None, handshake_deadline
        if now - last_receive >= session.liveness_s:
            reason = f"nothing heard from the gateway for {now - last_receive:.1f} s (heartbeat lost)"
            return SessionEnd(reason, reconnect=True), now
        session.expire(now)
        wake_at = last_receive + session.liveness_s
        if ping is not None:
            if now - self._last_send >= session.heartbeat_s:
                ping()
            wake_at = min(wake_at, self._last_send + session.heartbeat_s)
        request_deadline = session.next_deadline()
        if request_deadline is not None:
            wake_at = min(wake_at, request_deadline)
        return None, wake_at

    def _note_loss(self, end: SessionEnd) -> float:
        """Record a lost session (logged once per outage); the back-off to wait."""
        if self._lost is None:
            self._lost, self._lost_at, self._attempts = end, time.monotonic(), 0
            log.warning("swarm_client %s: %s; reconnecting", self.name, end.reason)
        else:
            log.info("swarm_client %s: reconnect attempt %d failed: %s", self.name, self._attempts, end.reason)
        self._attempts += 1
        return self._backoff.next()

    def _note_reopened(self) -> None:
        """A session opened after a loss: log the gap and tell ``on_reconnect``."""
        self._backoff.reset()
        lost, self._lost = self._lost, None
        if lost is None:
            return
        info = ReconnectInfo(
            reason=lost.reason,
            down_for=time.monotonic() - self._lost_at,
            attempts=self._attempts,
            resubscribed=len(self._session.subscriptions),
            reregistered=len(self._session.names),
        )
        log.warning(
            "swarm_client %s: session back after %.1f s (%d attempts); %d subscriptions and %d names restored; "
            "messages published meanwhile were not received",
            self.name, info.down_for, info.attempts, info.resubscribed, info.reregistered,
        )
        if self.on_reconnect is not None:
            self._dispatcher.call(self.on_reconnect, info)

    def _respond(
        self, message: Message, payload: Payload, final: bool, status: p.Status, content_type: str | None
    ) -> Any:
        raise NotImplementedError

    def _consumed(self, message: Message) -> None:
        raise NotImplementedError

    def _cancel_request(self, request_id: int) -> None:
        raise NotImplementedError
