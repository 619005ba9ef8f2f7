"""The asyncio client: the operations of :class:`swarm_client.Client` as coroutines.

::

    async with swarm_client.aio.Client("tcp://127.0.0.1:7400", name="worker") as client:
        reply = await client.request("echo.x", "hello")
        async for part in client.request_stream("stream", "3", to_name=True):
            print(part.text())

One task of the client's event loop reads the socket, keeps the heartbeat and
reconnects; the coroutines of the application send on the same socket (a
``zmq.asyncio`` socket used from one event loop). Callbacks (plain functions
or coroutine functions) run in order in a task of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import zmq
import zmq.asyncio

from . import protocol as p
from ._base import (
    Callback,
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

__all__ = ["Client", "Inbox", "Subscription", "Registration", "ReplyStream", "connect"]

log = logging.getLogger("swarm_client")


class _Dispatcher:
    """Runs application callbacks in order in a task of their own."""

    def __init__(self) -> None:
        self._calls: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="swarm-callbacks")

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (awaited if it returns an awaitable) in the dispatcher task."""
        self._calls.put_nowait((fn, args))

    async def stop(self) -> None:
        """Run what was queued, then end (unless called from a callback)."""
        self._calls.put_nowait(None)
        if asyncio.current_task() is not self._task:
            await self._task

    async def _run(self) -> None:
        while (item := await self._calls.get()) is not None:
            fn, args = item
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("swarm_client: callback %r raised", fn)


class Inbox(InboxBase):
    """Messages of a subscription, a registered name or (``client.inbox``)
    the client's own address: ``await get()``, ``async for``, or a callback."""

    _new_queue = asyncio.Queue

    async def _run_callback(self, message: Message) -> None:
        try:
            assert self._callback is not None
            result = self._callback(message)
            if inspect.isawaitable(result):
                await result
        finally:
            self._client._consumed(message)

    async def get(self, timeout: float | None = None) -> Message:
        """The next message; waits at most ``timeout`` seconds (None: for ever).

        Raises ``TimeoutError`` when none came in time, the
        :class:`GatewayError` that ended it (once), and
        :class:`InboxClosedError` when it has ended and is drained.
        """
        self._check_get()
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no message within {timeout} s") from None
        return self._take(item)

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except InboxClosedError:
            raise StopAsyncIteration from None


class Subscription(Inbox, SubscriptionBase):
    """A subscription made by :meth:`Client.subscribe`."""

    async def unsubscribe(self) -> None:
        """End the subscription; iteration stops after the messages already received."""
        await self._client._unsubscribe(self.sid)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unsubscribe()


class Registration(Inbox, RegistrationBase):
    """A name held by this client, made by :meth:`Client.register`."""

    async def unregister(self) -> None:
        """Release the name."""
        await self._client.unregister(self.name)

    async def __aenter__(self) -> Registration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unregister()


class ReplyStream(ReplyStreamBase):
    """The replies of one request, made by :meth:`Client.request_stream`.

    The ``REQUEST`` is sent when iteration starts. ``async for`` yields the
    partial replies in order and then the final one; a non-ok status raises
    :class:`RequestError` instead.
    """

    def __init__(
        self, client: Client, target: str, to_name: bool, timeout_ms: int, content_type: str, payload: bytes
    ) -> None:
        super().__init__(client, client._session.next_id(), target)
        self._to_name = to_name
        self._timeout_ms = timeout_ms
        self._content_type = content_type
        self._payload = payload
        self._sink: ReplySink | None = None

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Reply:
        if self._done:
            raise StopAsyncIteration
        if self._sink is None:
            self._sink = ReplySink(asyncio.Queue())
            try:
                await self._client._start_request(self)
            except BaseException:
                self._done = True
                raise
        try:
            item = await self._sink.queue.get()
        except BaseException:  # cancelled: stop waiting for this request
            self.close()
            raise
        return self._take(item)

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Client(ClientBase):
    """An asyncio SWP client; same parameters as :class:`swarm_client.Client`.

    ``await client.connect()`` (or ``async with``) opens the session; the
    client then belongs to that event loop. ``connect`` raises :class:`ConnectTimeoutError`
    when no ``WELCOME`` came within ``connect_timeout`` and
    :class:`GatewayError` when the gateway refused the ``HELLO``.
    ``on_message`` may be a coroutine function, like every callback.
    """

    _context_class = zmq.asyncio.Context
    _inbox_class = Inbox

    def _init_io(self) -> None:
        self._socket: zmq.asyncio.Socket | None = None
        self._stop = asyncio.Event()
        # Made by connect(), in the event loop the client then belongs to.
        self._dispatcher: _Dispatcher
        self._ready: asyncio.Future[None]
        self._io_task: asyncio.Task[None] | None = None

    async def connect(self) -> Client:
        """Open the session; returns the client once welcomed."""
        self._check_open_client()
        if self._io_task is None:
            loop = asyncio.get_running_loop()
            self._dispatcher = _Dispatcher()
            self._ready = loop.create_future()
            self._io_task = loop.create_task(self._io_main(), name=f"swarm-io-{self.name}")
        try:
            await asyncio.shield(self._ready)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- properties -----------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether a session is open right now (False while reconnecting)."""
        return self._session.is_open

    # --- operations -----------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        callback: Callback | None = None,
        queue_group: str = "",
        *,
        on_error: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Subscribe to ``pattern``; see :meth:`swarm_client.Client.subscribe`.
        ``callback`` may be a coroutine function."""
        self._check_open_client()
        sid = self._session.next_id()
        sub = Subscription(self, sid, pattern, queue_group, callback, on_error)
        try:
            errors = await self._confirmed(
                self._session.subscribe(sid, pattern, queue_group, sub), timeout, keep_on_loss=True
            )
        except ConfirmTimeoutError:
            await self._unsubscribe(sid)
            raise
        if errors:
            self._session.forget_subscription(sid)
            raise errors[0]
        return sub

    async def _unsubscribe(self, sid: int) -> None:
        frames = self._session.unsubscribe(sid)
        if frames is not None:
            await self._send(frames)

    async def register(
        self,
        name: str,
        callback: Callback | None = None,
        *,
        on_error: ErrorCallback | None = None,
        timeout: float | None = None,
    ) -> Registration:
        """Take ``name``; see :meth:`swarm_client.Client.register`."""
        self._check_open_client()
        registration = Registration(self, name, callback, on_error)
        try:
            errors = await self._confirmed(self._session.register(name, registration), timeout, keep_on_loss=True)
        except ConfirmTimeoutError:
            await self.unregister(name)
            raise
        if errors:
            self._session.forget_name(name)
            raise errors[0]
        return registration

    async def unregister(self, name: str) -> None:
        """Release a name this client registered."""
        frames = self._session.unregister(name)
        if frames is not None:
            await self._send(frames)

    async def publish(
        self,
        topic: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        ttl: float | None = None,
        confirm: bool = False,
    ) -> None:
        """Publish on ``topic``; see :meth:`swarm_client.Client.publish`."""
        await self._send_app(self._pub_frames(topic, payload, content_type, ttl), confirm)

    async def send(
        self,
        name: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        ttl: float | None = None,
        confirm: bool = False,
    ) -> None:
        """Send to the holder of ``name``; see :meth:`swarm_client.Client.send`."""
        await self._send_app(self._send_frames(name, payload, content_type, ttl), confirm)

    async def request(
        self,
        target: str,
        payload: Payload = b"",
        content_type: str | None = None,
        *,
        timeout: float = 5.0,
        to_name: bool = False,
    ) -> Reply:
        """Ask ``target`` and wait for the final reply; see
        :meth:`swarm_client.Client.request` (same return value and errors)."""
        partials: list[Reply] = []
        async with self.request_stream(target, payload, content_type, timeout=timeout, to_name=to_name) as stream:
            async for reply in stream:
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
        """The replies of a request as they come: ``async for part in
        client.request_stream(...)`` (partials, then the final reply)."""
        content_type, data = encode_payload(payload, content_type)
        return ReplyStream(self, target, to_name, to_ms(timeout, "timeout"), content_type, data)

    async def _start_request(self, stream: ReplyStream) -> None:
        self._check_open_client()
        assert stream._sink is not None
        frames = self._session.request(
            stream.request_id,
            stream.target,
            stream._to_name,
            stream._timeout_ms,
            stream._content_type,
            stream._payload,
            stream._sink,
            time.monotonic(),
        )
        await self._send(frames)

    async def reply(
        self,
        message: Message,
        payload: Payload = b"",
        *,
        final: bool = True,
        status: p.Status | int = p.Status.OK,
        content_type: str | None = None,
    ) -> None:
        """Answer a request; see :meth:`swarm_client.Client.reply`."""
        await self._respond(message, payload, final, p.Status(status), content_type)

    async def _respond(
        self, message: Message, payload: Payload, final: bool, status: p.Status, content_type: str | None
    ) -> None:
        await self._send_app(client_reply(message, payload, final, status, content_type), confirm=False)

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip to the gateway: the seconds it took, once the gateway has
        handled every command this client sent before."""
        self._check_open_client()
        if not self._session.is_open:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        started = time.monotonic()
        future: asyncio.Future[tuple[list[GatewayError], SwarmError | None]] = asyncio.get_running_loop().create_future()
        barrier = Barrier(lambda errors, failure: future.done() or future.set_result((errors, failure)))
        await self._send(self._session.ping(barrier, closes=True))
        _, failure = await self._wait(future, timeout)
        if failure is not None:
            raise failure
        return time.monotonic() - started

    async def close(self) -> None:
        """Say ``BYE`` and end the session; pending requests fail with
        :class:`ClientClosedError` and iterations end. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._stop.set()
        if self._io_task is not None:
            await self._io_task
            await self._dispatcher.stop()
        else:
            self._session.close(None)
        if self._own_context:
            # term() waits for the BYE to leave (linger): not in the event loop.
            await asyncio.get_running_loop().run_in_executor(None, self._context.term)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected" if self.is_connected else "reconnecting"
        return f"aio.Client(endpoint={self.endpoint!r}, name={self.name!r}, {state})"

    # --- plumbing -------------------------------------------------------

    def _check_open_client(self) -> None:
        if self._closing or self._io_done:
            raise ClientClosedError("the client is closed")

    async def _send(self, frames: list[bytes]) -> None:
        await self._send_all([frames])

    async def _send_all(self, messages: Sequence[list[bytes]]) -> None:
        """Send messages back to back: queued in one go, so that no other
        coroutine's message comes between them (barriers rely on it)."""
        socket = self._socket
        if socket is None or not self._session.is_open:
            raise NotConnectedError("not connected to the gateway (reconnecting)")
        futures = [socket.send_multipart(frames) for frames in messages]
        self._last_send = time.monotonic()
        try:
            await asyncio.gather(*futures)
        except zmq.ZMQError as exc:  # the socket was closed under us by a reconnect
            raise NotConnectedError(f"message not sent: {exc}") from None

    def _send_soon(self, frames: list[bytes]) -> None:
        """Send without waiting (credit grants, answers to PING)."""
        socket = self._socket
        if socket is None:
            return
        future = socket.send_multipart(frames)
        self._last_send = time.monotonic()
        future.add_done_callback(_log_send_failure)

    async def _wait(self, future: asyncio.Future[Any], timeout: float | None) -> Any:
        wait = self._confirm_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except asyncio.TimeoutError:
            raise ConfirmTimeoutError(f"the gateway did not answer within {wait} s") from None

    async def _confirmed(self, frames: list[bytes] | None, timeout: float | None, keep_on_loss: bool) -> list[GatewayError]:
        """Send ``frames`` between two PINGs; the gateway's errors about them
        (empty: accepted). ``frames`` None: recorded while disconnected."""
        if frames is None:
            return []
        future: asyncio.Future[tuple[list[GatewayError], SwarmError | None]] = asyncio.get_running_loop().create_future()
        barrier = Barrier(lambda errors, failure: future.done() or future.set_result((errors, failure)))
        try:
            await self._send_all(self._session.confirm(frames, barrier))
        except NotConnectedError:
            if keep_on_loss:
                return []
            raise
        errors, failure = await self._wait(future, timeout)
        if failure is not None and not (keep_on_loss and isinstance(failure, NotConnectedError)):
            raise failure
        return errors

    async def _send_app(self, frames: list[bytes], confirm: bool) -> None:
        self._check_open_client()
        if not confirm:
            await self._send(frames)
            return
        errors = await self._confirmed(frames, None, keep_on_loss=False)
        if errors:
            raise errors[0]

    def _consumed(self, message: Message) -> None:
        frames = self._session.consumed(message._epoch)
        if frames is not None:
            self._send_soon(frames)

    def _cancel_request(self, request_id: int) -> None:
        self._session.cancel_request(request_id)

    # --- the I/O task ---------------------------------------------------

    async def _io_main(self) -> None:
        cause: SwarmError | None = None
        try:
            cause = await self._io_run()
        except SwarmError as exc:
            log.error("swarm_client %s: %s", self.name, exc)
            cause = exc
        except Exception as exc:  # a bug here must not leave callers waiting for ever
            log.exception("swarm_client %s: the I/O task failed", self.name)
            cause = SwarmError(f"the I/O task failed: {exc!r}")
        finally:
            self._io_done = True
            if not self._ready.done():
                self._ready.set_exception(cause or ClientClosedError("closed while connecting"))
            self._session.close(cause)

    async def _io_run(self) -> SwarmError | None:
        while True:
            socket = self._io_connect()
            handshake = self._connect_timeout if not self._ready.done() else self._session.liveness_s
            deadline = time.monotonic() + handshake
            end = await self._io_serve(socket, deadline)
            was_open = self._session.is_open
            if end is not None:
                self._session.connection_lost(end.reason)  # before the socket goes: senders see "not connected"
            self._io_close(socket, say_bye=end is None and was_open)
            if end is None:
                self._session.is_open = False
                return None
            if not self._ready.done():  # the first session never opened
                error = end.error or NotConnectedError(f"could not open a session with {self.endpoint}: {end.reason}")
                self._ready.set_exception(error)
                return error
            if not end.reconnect:
                log.error("swarm_client %s: session ended for good: %s", self.name, end.reason)
                return end.error
            try:
                await asyncio.wait_for(self._stop.wait(), self._note_loss(end))
                return None  # stopped during the back-off
            except asyncio.TimeoutError:
                pass

    def _io_connect(self) -> zmq.asyncio.Socket:
        self._socket = socket = self._open_socket()
        self._send_soon(self._session.hello())  # queued by ZeroMQ until the connection is up
        return socket

    async def _io_serve(self, socket: zmq.asyncio.Socket, handshake_deadline: float) -> SessionEnd | None:
        session = self._session
        last_receive = time.monotonic()
        stop = asyncio.ensure_future(self._stop.wait())
        receive: asyncio.Future[list[bytes]] | None = None
        try:
            while True:
                end, wake_at = self._io_tick(
                    time.monotonic(), last_receive, handshake_deadline, lambda: self._send_soon(session.ping())
                )
                if end is not None:
                    return end
                if receive is None:
                    receive = socket.recv_multipart()
                if not receive.done():
                    await asyncio.wait({receive, stop}, timeout=max(0.0, wake_at - time.monotonic()) + 0.001,
                                       return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    return None
                if not receive.done():
                    continue
                parts, receive = receive.result(), None
                last_receive = time.monotonic()
                result = session.receive(parts)
                for frames in result.send:
                    self._send_soon(frames)
                if result.opened:
                    self._io_opened()
                if result.end is not None:
                    return result.end
        finally:
            stop.cancel()
            if receive is not None and not receive.done():
                receive.cancel()

    def _io_opened(self) -> None:
        if not self._ready.done():
            self._backoff.reset()
            self._ready.set_result(None)
            return
        self._note_reopened()

    def _io_close(self, socket: zmq.asyncio.Socket, say_bye: bool) -> None:
        if say_bye:
            self._send_soon(p.encode(p.Bye("client closing")))
        self._socket = None
        socket.close(1000 if say_bye else 0)  # linger: let the BYE (and what preceded it) leave


def _log_send_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("swarm_client: send failed: %s", future.exception())


async def connect(endpoint: str | None = None, name: str | None = None, **options: Any) -> Client:
    """Create an asyncio :class:`Client` and open its session."""
    return await Client(endpoint, name, **options).connect()
