"""The blocking client.

One background I/O thread owns the ZeroMQ ``DEALER`` socket (ZeroMQ sockets
are not thread-safe): application threads hand it commands through a queue
and wake it through a pipe. It keeps the heartbeat, detects a dead gateway,
reconnects, and feeds received messages to subscriptions, names and
requests. Callbacks run on a second thread, in order, so that a callback may
use the client (even block on a request) without stalling the I/O.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, Callable, Iterator

import zmq

from . import protocol as p
from ._base import (
    DEFAULT_ENDPOINT,
    ClientBase,
    ErrorCallback,
    InboxBase,
    RegistrationBase,
    ReplySink,
    ReplyStreamBase,
    SubscriptionBase,
)
from .errors import (
    ClientClosedError,
    ConfirmTimeoutError,
    GatewayError,
    InboxClosedError,
    NotConnectedError,
    SwarmError,
)
from .messages import Message, Payload, Reply, encode_payload
from .session import Barrier, SessionEnd, client_reply, to_ms

__all__ = [
    "DEFAULT_ENDPOINT",
    "Client",
    "Inbox",
    "Subscription",
    "Registration",
    "ReplyStream",
]

log = logging.getLogger("swarm_client")

# Application messages allowed to wait for the socket before publish() and
# send() block: bounded, like everything else on the way to the gateway.
_MAX_UNSENT = 10_000


class _Dispatcher:
    """Runs application callbacks in order on a thread of their own."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the dispatcher thread."""
        self._calls.put((fn, args))

    def stop(self, timeout: float) -> None:
        """Run what was queued, then end (unless called from a callback)."""
        self._calls.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, args = item
            try:
                fn(*args)
            except Exception:
                log.exception("swarm_client: callback %r raised", fn)


class Inbox(InboxBase):
    """Messages for the application: those of a subscription, of a registered
    name, or (``client.inbox``) those sent to the client's own address.

    Without a callback they wait in a queue, read with :meth:`get` or by
    iterating; with one, the callback runs on the client's callback thread.
    """

    _new_queue = queue.SimpleQueue

    def _run_callback(self, message: Message) -> None:
        try:
            assert self._callback is not None
            self._callback(message)
        finally:
            self._client._consumed(message)

    def get(self, timeout: float | None = None) -> Message:
        """The next message; waits at most ``timeout`` seconds (None: for ever).

        Raises ``TimeoutError`` when none came in time, the
        :class:`GatewayError` that ended it (once), and
        :class:`InboxClosedError` when it has ended and is drained.
        """
        self._check_get()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        return self._take(item)

    def __iter__(self) -> Iterator[Message]:
        """Messages until the inbox ends (errors from the gateway are raised)."""
        while True:
            try:
                yield self.get()
            except InboxClosedError:
                return


class Subscription(Inbox, SubscriptionBase):
    """A subscription to ``pattern`` (with ``queue_group``), made by :meth:`Client.subscribe`."""

    def unsubscribe(self) -> None:
        """End the subscription; iteration stops after the messages already received."""
        self._client._unsubscribe(self.sid)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()


class Registration(Inbox, RegistrationBase):
    """A name this client holds, made by :meth:`Client.register`: messages sent
    and requests made to the name arrive here (``Message.name`` is set)."""

    def unregister(self) -> None:
        """Release the name."""
        self._client.unregister(self.name)

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()


class ReplyStream(ReplyStreamBase):
    """The replies of one request, made by :meth:`Client.request_stream`.

    Iterating yields the partial replies in order and then the final one;
    a non-ok status raises :class:`RequestError` instead. :meth:`close` stops
    waiting (later replies are dropped).
    """

    def __init__(self, client: Client, request_id: int, target: str, sink: ReplySink) -> None:
        super().__init__(client, request_id, target)
        self._sink = sink

    def __iter__(self) -> ReplyStream:
        return self

    def __next__(self) -> Reply:
        if self._done:
            raise StopIteration
        try:
            item = self._sink.queue.get()
        except BaseException:  # e.g. KeyboardInterrupt: stop waiting for this request
            self.close()
            raise
        return self._take(item)

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client(ClientBase):
    """A blocking SWP client.

    Connects at construction and returns once the gateway said ``WELCOME``
    (raises :class:`ConnectTimeoutError` after ``connect_timeout`` seconds,
    :class:`GatewayError` when the gateway refused the ``HELLO``). Use it as
    a context manager or call :meth:`close`.

    ``endpoint``, ``name`` and ``token`` default to the environment's
    ``SWARM_GATEWAY``, ``SWARM_NAME`` and ``SWARM_TOKEN`` (swarmd sets them for
    the processes it supervises), else to ``tcp://127.0.0.1:7400``, a fresh
    name and no token.

    ``name`` is the client's name (default: ``python-<pid>-<random>``); its
    routing id is ``c/`` + name, so a reconnect takes the old connection
    over. ``credit`` turns on credit-based flow control: the client grants
    more as the application consumes messages. ``token`` is the gateway's
    shared secret, if it wants one. The ``curve_*`` keys (Z85) turn CURVE on;
    all three are needed.

    ``on_error(error)`` receives the gateway's errors that are about no call
    in progress (e.g. a refused ``publish`` or ``send`` that was not
    confirmed); without it they are logged. ``on_reconnect(info)`` is told
    when a lost session is back (see :class:`ReconnectInfo`); the loss and
    the return are logged in any case. ``on_message(message)`` receives the
    messages sent to the client's own address rather than to one of its
    names (``message.name`` is empty), e.g. an agent answering a message the
    client published by sending to its sender; without it they wait in
    :attr:`inbox`. All callbacks run on the callback thread.

    :attr:`max_request_timeout` is the gateway's longest request timeout.
    """

    _context_class = zmq.Context
    _inbox_class = Inbox

    def _init_io(self) -> None:
        """Start the I/O thread and wait for the first session (called by the constructor)."""
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], Callable[[SwarmError], None] | None]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._unsent = threading.BoundedSemaphore(_MAX_UNSENT)
        self._outbox: deque[tuple[list[bytes], bool]] = deque()  # (frames, counted in _unsent)
        self._lock = threading.Lock()
        self._stopping = False  # the I/O thread must end (I/O side)
        self._connected = False
        self._ready = threading.Event()
        self._start_error: SwarmError | None = None
        self._dispatcher = _Dispatcher(f"swarm-callbacks-{self.name}")
        self._thread = threading.Thread(target=self._io_main, name=f"swarm-io-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait()  # the I/O thread enforces connect_timeout itself
        if self._start_error is not None:
            self.close()
            raise self._start_error

    # --- properties -----------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether a session is open right now (False while reconnecting)."""
        return self._connected

    # --- operations -----------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        callback: Callable[[Message], Any] | None = None,
        queue_group: str = "",
        *,
        on_error: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Subscribe to ``pattern`` (``*`` matches one token, ``>`` one or more
        trailing ones), optionally in a queue group (each message goes to one
        member of the group).

        Returns once the gateway has the subscription: messages published
        after that reach it. Raises :class:`GatewayError` (``bad_field``) for
        a pattern the gateway refuses. Without ``callback`` read the messages
        from the returned :class:`Subscription`; with one, it runs on the
        callback thread, and ``on_error`` (default: the client's) receives
        later errors about the subscription. While reconnecting, the
        subscription is recorded and made when the session is back.
        """
        sid = self._session.next_id()
        sub = Subscription(self, sid, pattern, queue_group, callback, on_error)
        self._take(
            lambda: self._session.subscribe(sid, pattern, queue_group, sub),
            undo=lambda: self._unsubscribe(sid),
            forget=lambda: self._session.forget_subscription(sid),
            timeout=timeout,
        )
        return sub

    def _take(self, add: Callable[[], Any], *, undo: Callable[[], None], forget: Callable[[], None],
              timeout: float | None) -> None:
        """Run ``add`` (a SUB or REGISTER) and wait for the gateway's verdict:
        ``undo`` it when none comes in time, ``forget`` it and raise when refused."""
        try:
            errors = self._confirmed(add, timeout, keep_on_loss=True)
        except ConfirmTimeoutError:
            undo()
            raise
        if errors:
            self._submit(forget)
            raise errors[0]

    def _send_from_session(self, frames_of: Callable[[], Any]) -> None:
        """On the I/O thread: send what the session returns (None: nothing)."""

        def run() -> None:
            frames = frames_of()
            if frames is not None:
                self._io_queue(frames)

        self._submit(run)

    def _unsubscribe(self, sid: int) -> None:
        self._send_from_session(lambda: self._session.unsubscribe(sid))

    def register(
        self,
        name: str,
        callback: Callable[[Message], Any] | None = None,
        *,
        on_error: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Registration:
        """Take ``name``: messages sent and requests made to it arrive at the
        returned :class:`Registration` (or its callback).

        Returns once the gateway has registered it; raises
        :class:`GatewayError` (``name_taken``, ``bad_field``) when refused.
        The name is registered again after a reconnect.
        """
        registration = Registration(self, name, callback, on_error)
        self._take(
            lambda: self._session.register(name, registration),
            undo=lambda: self.unregister(name),
            forget=lambda: self._session.forget_name(name),
            timeout=timeout,
        )
        return registration

    def unregister(self, name: str) -> None:
        """Release a name this client registered."""
        self._send_from_session(lambda: self._session.unregister(name))

    def publish(
        self,
        topic: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        ttl: float | None = None,
        confirm: bool = False,
    ) -> None:
        """Publish ``payload`` on ``topic``.

        ``ttl`` (seconds) is the message's deadline. A publish is never a
        request: for answers use :meth:`request` (an agent may still answer
        by sending to the client's address: see :attr:`inbox`).

        By default nothing waits for the gateway: a refusal goes to
        ``on_error``. With ``confirm=True`` the call returns once the gateway
        accepted the message and raises its :class:`GatewayError` otherwise.
        Raises :class:`NotConnectedError` while reconnecting.
        """
        self._send_app(self._pub_frames(topic, payload, content_type, ttl), confirm)

    def send(
        self,
        name: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        ttl: float | None = None,
        confirm: bool = False,
    ) -> None:
        """Send ``payload`` to the agent or client holding ``name``.

        A refusal (``no_such_name``, ``mailbox_full``, ``dead_agent``) goes
        to ``on_error``, or is raised with ``confirm=True``.
        """
        self._send_app(self._send_frames(name, payload, content_type, ttl), confirm)

    def request(
        self,
        target: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        timeout: float = 5.0,
        to_name: bool = False,
    ) -> Reply:
        """Ask ``target`` (a topic, or a name with ``to_name=True``) and wait
        for the final reply.

        Returns the final :class:`Reply` (status ok), with any partial
        replies that came before it in ``reply.partials``. Raises
        :class:`RequestError` for a non-ok status (``.status`` says which:
        timeout, no_responder, dead_agent, ...), :class:`GatewayError` when
        the gateway refused the request itself (e.g. a bad topic), and
        :class:`NotConnectedError` while reconnecting. ``timeout`` (seconds)
        covers the whole answer; 0 means the gateway's maximum
        (:attr:`max_request_timeout`), and longer ones are lowered to it.
        """
        partials: list[Reply] = []
        with self.request_stream(target, payload, content_type, timeout=timeout, to_name=to_name) as stream:
            for reply in stream:
                if reply.final:
                    return replace(reply, partials=tuple(partials))
                partials.append(reply)
        raise AssertionError("a reply stream ends with a final reply or an error")

    def request_stream(
        self,
        target: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        timeout: float = 5.0,
        to_name: bool = False,
    ) -> ReplyStream:
        """Like :meth:`request`, but returns the replies as they come: iterate
        the :class:`ReplyStream` for the partial replies, then the final one."""
        content_type, data = encode_payload(payload, content_type)
        timeout_ms = to_ms(timeout, "timeout")
        request_id = self._session.next_id()
        sink = ReplySink(queue.SimpleQueue())

        def run() -> None:
            try:
                frames = self._session.request(
                    request_id, target, to_name, timeout_ms, content_type, data, sink, time.monotonic()
                )
            except SwarmError as exc:
                sink.fail(exc)
                return
            self._io_queue(frames)

        self._submit(run, abandon=sink.fail)
        return ReplyStream(self, request_id, target, sink)

    def _cancel_request(self, request_id: int) -> None:
        self._submit(lambda: self._session.cancel_request(request_id))

    def reply(
        self,
        message: Message,
        payload: Payload = b"",
        *,
        final: bool = True,
        status: p.Status | int = p.Status.OK,
        content_type: str | None = None,
    ) -> None:
        """Answer ``message`` (a request received on a subscription or a
        registered name). ``final=False`` sends a partial reply; the last
        reply must be final. A non-ok status is sent final, without payload."""
        self._respond(message, payload, final, p.Status(status), content_type)

    def _respond(
        self, message: Message, payload: Payload, final: bool, status: p.Status, content_type: str | None
    ) -> None:
        self._send_app(client_reply(message, payload, final, status, content_type), confirm=False)

    def ping(self, timeout: float | None = None) -> float:
        """Round trip to the gateway: returns the seconds it took, once the
        gateway has handled every command this client sent before."""
        started = time.monotonic()
        future: Future[tuple[list[GatewayError], SwarmError | None]] = Future()
        barrier = Barrier(lambda errors, failure: future.set_result((errors, failure)))

        def run() -> None:
            if not self._session.is_open:
                future.set_result(([], NotConnectedError("not connected to the gateway (reconnecting)")))
                return
            self._io_queue(self._session.ping(barrier, closes=True))

        self._submit(run, abandon=lambda exc: future.set_result(([], exc)))
        _, failure = self._wait(future, timeout)
        if failure is not None:
            raise failure
        return time.monotonic() - started

    def close(self, timeout: float = 5.0) -> None:
        """Say ``BYE`` and end the session; pending requests fail with
        :class:`ClientClosedError` and iterations over subscriptions end.
        Idempotent."""
        with self._lock:
            already = self._closing
            self._closing = True
            if not self._io_done:
                self._enqueue(self._io_stop, None)
        self._thread.join(timeout)
        self._dispatcher.stop(timeout)
        if not already and not self._thread.is_alive():
            os.close(self._wake_r)  # safe: with the I/O thread gone nothing writes to the pipe any more
            os.close(self._wake_w)
            if self._own_context:
                self._context.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected" if self._connected else "reconnecting"
        return f"Client(endpoint={self.endpoint!r}, name={self.name!r}, {state})"

    # --- plumbing between application threads and the I/O thread ----------

    def _submit(self, fn: Callable[[], None], abandon: Callable[[SwarmError], None] | None = None) -> None:
        """Run ``fn`` on the I/O thread; raises :class:`ClientClosedError`
        when the client is closed. ``abandon`` is called instead of ``fn`` if
        the I/O thread ends before running it."""
        with self._lock:
            if self._closing or self._io_done:
                raise ClientClosedError("the client is closed")
            self._enqueue(fn, abandon)

    def _submit_internal(self, fn: Callable[[], None]) -> None:
        """Like :meth:`_submit`, but silently dropped once the I/O thread is gone."""
        with self._lock:
            if not self._io_done:
                self._enqueue(fn, None)

    def _enqueue(self, fn: Callable[[], None], abandon: Callable[[SwarmError], None] | None) -> None:
        # Under self._lock: the I/O thread abandons what is queued when it ends
        # (under the same lock), so no command is left waiting for ever.
        self._commands.put((fn, abandon))
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def _wait(self, future: Future[Any], timeout: float | None) -> Any:
        wait = self._confirm_timeout if timeout is None else timeout
        try:
            return future.result(wait)
        except FutureTimeout:
            raise ConfirmTimeoutError(f"the gateway did not answer within {wait} s") from None

    def _confirmed(
        self, make_command: Callable[[], list[bytes] | None], timeout: float | None, keep_on_loss: bool
    ) -> list[GatewayError]:
        """Run ``make_command`` on the I/O thread and send its frames between
        two PINGs; return the gateway's errors about it (empty: accepted).

        A command made while disconnected is only recorded (``make_command``
        returns None); with ``keep_on_loss`` a connection lost before the
        confirmation is not an error either (the command is replayed).
        """
        future: Future[tuple[list[GatewayError], SwarmError | None]] = Future()

        def done(errors: list[GatewayError], failure: SwarmError | None) -> None:
            if not future.done():
                future.set_result((errors, failure))

        def run() -> None:
            try:
                frames = make_command()
            except Exception as exc:
                future.set_exception(exc)
                return
            if frames is None:
                done([], None)
                return
            for message in self._session.confirm(frames, Barrier(done)):
                self._io_queue(message)

        self._submit(run, abandon=lambda exc: done([], exc))
        errors, failure = self._wait(future, timeout)
        if failure is not None and not (keep_on_loss and isinstance(failure, NotConnectedError)):
            raise failure
        return errors

    def _send_app(self, frames: list[bytes], confirm: bool) -> None:
        """Send an application message (publish, send, reply)."""
        if not self._connected:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        if confirm:
            def make() -> list[bytes]:
                if not self._session.is_open:
                    raise NotConnectedError("not connected to the gateway (reconnecting)")
                return frames

            errors = self._confirmed(make, None, keep_on_loss=False)
            if errors:
                raise errors[0]
            return
        self._unsent.acquire()  # blocks while _MAX_UNSENT messages wait for the socket

        def run() -> None:
            if self._session.is_open:
                self._io_queue(frames, counted=True)
            else:
                self._unsent.release()
                self._report(NotConnectedError("message not sent: the connection was lost"))

        try:
            self._submit(run, abandon=lambda exc: self._unsent.release())
        except ClientClosedError:
            self._unsent.release()
            raise

    def _consumed(self, message: Message) -> None:
        """The application took ``message``: grant credit back if in use."""
        if self._session.credit is None:
            return

        def run() -> None:
            frames = self._session.consumed(message._epoch)
            if frames is not None:
                self._io_queue(frames)

        self._submit_internal(run)

    # --- the I/O thread -------------------------------------------------

    def _io_main(self) -> None:
        cause: SwarmError | None = None
        try:
            cause = self._io_run()
        except SwarmError as exc:
            log.error("swarm_client %s: %s", self.name, exc)
            cause = exc
        except BaseException as exc:  # a bug here must not leave callers waiting for ever
            log.exception("swarm_client %s: the I/O thread failed", self.name)
            cause = SwarmError(f"the I/O thread failed: {exc!r}")
        finally:
            with self._lock:
                self._io_done = True
            self._connected = False
            if not self._ready.is_set():
                self._start_error = self._start_error or cause or ClientClosedError("closed while connecting")
                self._ready.set()
            self._session.close(cause)
            while True:  # whatever is still queued will never run
                try:
                    _, abandon = self._commands.get_nowait()
                except queue.Empty:
                    break
                if abandon is not None:
                    abandon(ClientClosedError("the client is closed"))

    def _io_run(self) -> SwarmError | None:
        """Connect, serve, reconnect until closed; returns why the client ended."""
        while True:
            socket = self._io_connect()
            handshake = self._connect_timeout if not self._ready.is_set() else self._session.liveness_s
            deadline = time.monotonic() + handshake
            end = self._io_serve(socket, deadline)
            self._io_close(socket, say_bye=end is None and self._session.is_open)
            self._connected = False
            if end is None:
                return None
            if not self._ready.is_set():  # the first session never opened
                self._start_error = end.error or NotConnectedError(
                    f"could not open a session with {self.endpoint}: {end.reason}"
                )
                return self._start_error
            self._session.connection_lost(end.reason)
            self._io_drop_outbox(end.reason)
            if not end.reconnect:
                log.error("swarm_client %s: session ended for good: %s", self.name, end.reason)
                return end.error
            if not self._io_pause(self._note_loss(end)):
                return None

    def _io_connect(self) -> zmq.Socket:
        socket = self._open_socket()
        socket.send_multipart(self._session.hello())  # queued by ZeroMQ until the connection is up
        self._last_send = time.monotonic()
        return socket

    def _io_serve(self, socket: zmq.Socket, handshake_deadline: float) -> SessionEnd | None:
        """Run one connection until its session ends (returned) or the client
        stops (None)."""
        session = self._session
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        last_receive = time.monotonic()
        while True:
            self._io_run_commands()
            if self._stopping:
                return None
            # A blocked outbox wakes us through POLLOUT, and it is no time for a PING.
            ping = None if self._outbox else lambda: self._io_queue(session.ping())
            end, wake_at = self._io_tick(time.monotonic(), last_receive, handshake_deadline, ping)
            if end is not None:
                return end
            if not self._io_flush(socket):
                poller.modify(socket, zmq.POLLIN | zmq.POLLOUT)
            else:
                poller.modify(socket, zmq.POLLIN)
            events = dict(poller.poll(max(0.0, wake_at - time.monotonic()) * 1000 + 1))
            if self._wake_r in events:
                _drain(self._wake_r)
            if events.get(socket, 0) & zmq.POLLIN:
                while True:
                    try:
                        parts = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last_receive = time.monotonic()
                    result = session.receive(parts)
                    for frames in result.send:
                        self._io_queue(frames)
                    if result.opened:
                        self._io_opened()
                    if result.end is not None:
                        self._io_flush(socket)
                        return result.end

    def _io_opened(self) -> None:
        self._connected = True
        if not self._ready.is_set():
            self._backoff.reset()
            self._ready.set()
            return
        self._note_reopened()

    def _io_pause(self, seconds: float) -> bool:
        """Wait between connection attempts, still running commands; False if
        the client stopped meanwhile."""
        deadline = time.monotonic() + seconds
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            self._io_run_commands()
            if self._stopping:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if poller.poll(remaining * 1000 + 1):
                _drain(self._wake_r)

    def _io_run_commands(self) -> None:
        while True:
            try:
                fn, _ = self._commands.get_nowait()
            except queue.Empty:
                return
            fn()

    def _io_queue(self, frames: list[bytes], counted: bool = False) -> None:
        self._outbox.append((frames, counted))

    def _io_flush(self, socket: zmq.Socket) -> bool:
        """Send what the socket takes now; False if some is left."""
        while self._outbox:
            frames, counted = self._outbox[0]
            try:
                socket.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                return False
            self._outbox.popleft()
            if counted:
                self._unsent.release()
            self._last_send = time.monotonic()
        return True

    def _io_drop_outbox(self, reason: str) -> None:
        dropped = 0
        while self._outbox:
            _, counted = self._outbox.popleft()
            if counted:
                self._unsent.release()
                dropped += 1
        if dropped:
            self._report(NotConnectedError(f"{dropped} messages not sent: {reason}"))

    def _io_stop(self) -> None:
        self._stopping = True

    def _io_close(self, socket: zmq.Socket, say_bye: bool) -> None:
        linger = 0
        if say_bye:
            self._io_flush(socket)
            try:
                socket.send_multipart(p.encode(p.Bye("client closing")), zmq.NOBLOCK)
                linger = 1000  # let the BYE (and what preceded it) leave
            except zmq.Again:
                pass
        socket.close(linger)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
