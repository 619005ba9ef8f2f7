"""Fixtures: a real ``swarm-gateway`` process, clients, and a raw DEALER.

The gateway binary is taken from ``$SWARM_GATEWAY``, else from
``build/apps/swarm-gateway/swarm-gateway`` in the repository. Tests that
need it fail (not skip) when it is missing. Nothing here sleeps for a fixed
time: every wait polls a condition against a deadline.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq

from swarm_client import Client
from swarm_client import protocol as p

REPO = Path(__file__).resolve().parents[3]
DEFAULT_BINARY = REPO / "build" / "apps" / "swarm-gateway" / "swarm-gateway"
READY_PREFIX = "swarm-gateway: listening on "
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def gateway_binary() -> Path:
    """The gateway to test; fails the test when there is none."""
    path = Path(os.environ.get("SWARM_GATEWAY") or DEFAULT_BINARY)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"swarm-gateway binary not found at {path}: build it (target swarm-gateway) "
            "or point SWARM_GATEWAY at it",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(0.01)


def unique(prefix: str) -> str:
    """A name or topic token no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Collector:
    """A thread-safe list to pass as a callback (messages, errors, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []

    def __call__(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)

    @property
    def items(self) -> list[Any]:
        with self._lock:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The items once there are at least ``count``."""
        wait_until(lambda: len(self.items) >= count, timeout, f"{count} items (have {len(self.items)})")
        return self.items

    def wait_match(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        """The first item for which ``predicate`` holds, once there is one."""
        return wait_until(lambda: next((i for i in self.items if predicate(i)), None), timeout, "a matching item")


class Gateway:
    """One ``swarm-gateway`` process on a loopback port."""

    def __init__(self, binary: Path, args: list[str], port: int | None = None) -> None:
        self.binary = binary
        self.args = args
        self.port = port or free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", errors="backslashreplace")
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        return [str(self.binary), "--bind", self.endpoint, *self.args]

    def start(self) -> Gateway:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self._stderr, text=True, errors="backslashreplace", bufsize=1
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"{self.command}: no listening line within {START_TIMEOUT} s\n{self.stderr()}", pytrace=False)
            if line is None:
                code = self.process.wait()
                pytest.fail(f"{self.command} exited with {code} before listening\n{self.stderr()}", pytrace=False)
            if line.startswith(READY_PREFIX):
                listening = line[len(READY_PREFIX):].strip()
                assert listening == self.endpoint, f"gateway says it listens on {listening!r}, asked {self.endpoint!r}"
                return self

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return "stderr:\n" + self._stderr.read()[-4000:]

    def terminate(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"gateway did not exit within {STOP_TIMEOUT} s of SIGTERM\n{self.stderr()}", pytrace=False)
        return self.process.returncode

    def close(self) -> None:
        """Stop the gateway if it runs, and release its pipes."""
        try:
            self.terminate()
        finally:
            if self._reader is not None:
                self._reader.join(STOP_TIMEOUT)  # it ends at the pipe's EOF, now that the process is gone
            if self.process is not None and self.process.stdout is not None:
                self.process.stdout.close()
            self._stderr.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _start(args: list[str], port: int | None = None) -> Gateway:
    gw = Gateway(gateway_binary(), args, port)
    try:
        return gw.start()
    except BaseException:
        gw.close()
        raise


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    """The shared gateway with the demo agents (echo, stream)."""
    gw = _start(["--demo-agents"])
    yield gw
    gw.close()


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., Gateway]]:
    """Start dedicated gateways (extra arguments, optional fixed port); all
    are stopped at teardown."""
    started: list[Gateway] = []

    def start(*args: str, port: int | None = None, demo_agents: bool = True) -> Gateway:
        gw = _start((["--demo-agents"] if demo_agents else []) + list(args), port)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


@pytest.fixture
def connect(gateway: Gateway) -> Iterator[Callable[..., Client]]:
    """Open blocking clients on the shared gateway (``endpoint=`` for
    another one); all are closed at teardown."""
    clients: list[Client] = []

    def open_client(**options: Any) -> Client:
        options.setdefault("endpoint", gateway.endpoint)
        options.setdefault("name", unique("py"))
        client = Client(**options)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


class RawDealer:
    """A bare DEALER speaking frames by hand, for what the client library
    would never send."""

    def __init__(self, context: zmq.Context, endpoint: str, routing_id: bytes | None = None) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id)
        self.socket.connect(endpoint)

    def send(self, parts: list[bytes]) -> None:
        self.socket.send_multipart(parts)

    def send_frame(self, frame: p.Frame) -> None:
        self.send(p.encode(frame))

    def recv(self, timeout: float = 5.0) -> list[bytes]:
        if not self.socket.poll(timeout * 1000):
            pytest.fail(f"no message from the gateway within {timeout} s", pytrace=False)
        return self.socket.recv_multipart()

    def expect(self, kind: type, timeout: float = 5.0, skip: tuple[type, ...] = (p.Ping,)) -> Any:
        """The next frame, skipping ``skip`` (heartbeats); fails unless it is a ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            frame = p.decode(self.recv(max(0.0, deadline - time.monotonic())), any_version=True)
            if isinstance(frame, skip) and not isinstance(frame, kind):
                continue
            assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame}"
            return frame

    def hello(self, name: str, **params: Any) -> p.Welcome:
        self.send_frame(p.Hello({"name": name, "protocol": 1, **params}))
        return self.expect(p.Welcome)

    def close(self) -> None:
        self.socket.close(0)


@pytest.fixture
def raw(gateway: Gateway) -> Iterator[Callable[..., RawDealer]]:
    """Open raw DEALER sockets (on the shared gateway unless ``endpoint=``)."""
    context = zmq.Context()
    dealers: list[RawDealer] = []

    def open_dealer(endpoint: str | None = None, routing_id: bytes | None = None) -> RawDealer:
        dealer = RawDealer(context, endpoint or gateway.endpoint, routing_id)
        dealers.append(dealer)
        return dealer

    yield open_dealer
    for dealer in dealers:
        dealer.close()
    context.term()
