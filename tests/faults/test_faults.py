"""Faults of the servers swarm-demo writes to: it must end within its bound,
say what it could not write, and exit non-zero (3) rather than report success.
Servers that never come up, a port that accepts and never answers, and a
real Redis holding a poisoned key; more runs against real Redis and Postgres
are in the C++ storage tests."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SWARM_BUILD", ROOT / "build"))
DEMO = BUILD / "apps" / "swarm-demo"


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(*args: str, bound: float) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run([str(DEMO), "--agents", "1000", "--seconds", "0.5", *args],
                          capture_output=True, text=True, timeout=bound + 30)
    return done, time.monotonic() - start


def test_a_postgres_never_reachable_is_loss_reported_and_exit_3() -> None:
    done, took = run_demo("--postgres", f"host=127.0.0.1 port={closed_port()} dbname=swarm", bound=20)
    assert done.returncode == 3, done.stderr
    assert "journal events it accepted were not written" in done.stderr
    assert took < 20  # the run, the runtime's shutdown flush (5 s) and the journal's (5 s)


def test_a_postgres_port_that_never_answers_does_not_hang_the_exit() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts connections; nobody ever reads them
        port = silent.getsockname()[1]
        done, took = run_demo("--postgres", f"host=127.0.0.1 port={port} dbname=swarm", bound=30)
    assert done.returncode == 3, done.stderr
    assert "journal events it accepted were not written" in done.stderr
    assert took < 30  # + a connect attempt's 10 s default connect_timeout


def test_a_redis_never_reachable_ends_after_the_state_wait() -> None:
    done, took = run_demo("--redis", f"redis://127.0.0.1:{closed_port()}", "--state-wait", "2", bound=15)
    assert done.returncode == 3, done.stderr
    assert "did not get their state back within 2.0 s" in done.stderr
    assert took < 15


def test_dsn_values_libpq_checks_only_when_connecting_are_refused_at_start() -> None:
    for dsn, error in [("host=127.0.0.1 port=abc", 'port: got "abc"'),
                       ("host=127.0.0.1 port=99999", 'port: got "99999"'),
                       ("host=127.0.0.1 sslmode=bogus", 'sslmode: got "bogus"'),
                       ("host=127.0.0.1 connect_timeout=x", 'connect_timeout: got "x"')]:
        done, _ = run_demo("--postgres", dsn, bound=5)
        assert done.returncode == 2, (dsn, done.stderr)
        assert error in done.stderr, (dsn, done.stderr)


def test_a_poisoned_state_key_ends_the_run_loudly_with_exit_4() -> None:
    """A key of the wrong type: that peer's state cannot load, it crash-loops,
    its supervisor gives up; the run says which key and why, and exits."""
    port = closed_port()
    with tempfile.TemporaryDirectory() as folder:
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
                                  "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                                 text=True).stdout.strip() != "PONG":
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
            subprocess.run(["redis-cli", "-p", str(port), "SET", "swarm:state:demo-peer-5", "x"], check=True,
                           capture_output=True)
            done, took = run_demo("--redis", f"redis://127.0.0.1:{port}", bound=30)
        finally:
            redis.kill()
            redis.wait()
    assert done.returncode == 4, done.stderr
    assert "root supervisor" in done.stderr and "gave up" in done.stderr
    assert "swarm:state:demo-peer-5" in done.stderr and "WRONGTYPE" in done.stderr
    assert took < 30
