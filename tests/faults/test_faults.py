"""Faults of the servers swarm-demo writes to: it must end within its bound,
say what it could not write, and exit non-zero (3) rather than report success.
Servers that never come up, a port that accepts and never answers, a real
Redis holding a poisoned key, and real Redis and Postgres servers killed,
restarted empty or frozen (SIGSTOP) while the demo runs; finer-grained runs
are in the C++ storage tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from servers import Postgres, Redis, free_port, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SWARM_BUILD", ROOT / "build"))
DEMO = BUILD / "apps" / "swarm-demo"


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(*args: str, bound: float, seconds: float = 0.5) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run([str(DEMO), "--agents", "1000", "--seconds", str(seconds), *args],
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


def test_a_poisoned_state_key_is_kept_aside_and_its_peer_starts_fresh(tmp_path: Path) -> None:
    """A key of the wrong type: that peer's state cannot load. The value is
    renamed aside (nothing deleted), the peer starts fresh instead of
    crash-looping, and the run says which key and why."""
    redis = Redis(tmp_path)
    redis.start()
    try:
        redis.cli("SET", "swarm:state:demo-peer-5", "x")
        done, took = run_demo("--redis", redis.url, bound=30)
        aside = redis.cli("KEYS", "swarm:state:demo-peer-5.unreadable.*").split()
        assert len(aside) == 1, aside
        assert redis.cli("GET", aside[0]) == "x"
        assert redis.cli("TYPE", "swarm:state:demo-peer-5") == "hash"  # the peer's own state again
    finally:
        redis.stop()
    assert done.returncode == 0, done.stderr
    assert "swarm:state:demo-peer-5" in done.stderr and "WRONGTYPE" in done.stderr
    assert took < 30


def test_a_swarm_whose_supervisor_gives_up_ends_loudly_with_exit_4() -> None:
    """Peers crashing on 1% of 100,000 circulating messages: far above the restart intensity."""
    done, took = run_demo("--crash-rate", "0.01", "--in-flight", "100000", seconds=30, bound=30)
    assert done.returncode == 4, done.stderr
    assert "root supervisor" in done.stderr and "gave up" in done.stderr and "injected crash" in done.stderr
    assert took < 30  # ends when the tree is gone, not after --seconds


# -- servers that fail while the demo runs ---

class Demo:
    """swarm-demo running in the background, its admin port open."""

    def __init__(self, *args: str, agents: int = 1000, seconds: float = 4) -> None:
        self.admin = free_port()
        self.start = time.monotonic()
        self.proc = subprocess.Popen([str(DEMO), "--agents", str(agents), "--seconds", str(seconds),
                                      "--admin", f"127.0.0.1:{self.admin}", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ready(self) -> int:
        """/readyz status: 200 ready, 503 not (0: the admin port is not up yet)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def finish(self, bound: float) -> tuple[int, str, str, float]:
        out, err = self.proc.communicate(timeout=bound + 30)
        return self.proc.returncode, out, err, time.monotonic() - self.start


def journal_summary(out: str) -> tuple[int, int]:
    """(events appended, events written) from the demo's summary."""
    m = re.search(r"journal\s+postgres: (\d+) events, (\d+) written", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def assert_every_event_written_once(out: str, pg: Postgres) -> None:
    appended, written = journal_summary(out)
    assert appended == written
    assert rows_of(pg) == written
    assert int(pg.query("SELECT count(DISTINCT event_id) FROM swarm_journal")) == written


def rows_of(pg: Postgres) -> int:
    try:
        return int(pg.query("SELECT count(*) FROM swarm_journal"))
    except subprocess.CalledProcessError:  # the table is not there yet
        return 0


def test_a_redis_restarted_empty_mid_run_gets_every_peers_state_again(tmp_path: Path) -> None:
    redis = Redis(tmp_path)  # no persistence: a restart comes back empty
    redis.start()
    try:
        demo = Demo("--redis", redis.url)
        wait_until(lambda: redis.keys() >= 1000, 30, "every peer's state in Redis")
        redis.kill()
        redis.start()
        code, out, err, _ = demo.finish(bound=60)
        assert code == 0, err
        assert "restarted (its run_id changed)" in err, err
        assert redis.keys() == 1000, err
    finally:
        redis.stop()


def test_a_redis_frozen_mid_run_is_not_ready_and_the_run_still_writes_everything(tmp_path: Path) -> None:
    redis = Redis(tmp_path)
    redis.start()
    try:
        demo = Demo("--redis", redis.url, seconds=15)
        wait_until(lambda: redis.keys() >= 1000 and demo.ready() == 200, 30, "a ready demo with every state")
        redis.signal(signal.SIGSTOP)
        wait_until(lambda: demo.ready() == 503, 15, "/readyz to say not ready during the freeze")
        redis.signal(signal.SIGCONT)
        wait_until(lambda: demo.ready() == 200, 15, "/readyz to say ready after the thaw")
        code, out, err, _ = demo.finish(bound=60)
        assert code == 0, err
        assert "0 pending" in out, out
    finally:
        redis.stop()


def test_a_postgres_frozen_mid_run_then_thawed_loses_nothing_and_writes_nothing_twice() -> None:
    pg = Postgres()
    pg.start()
    try:
        demo = Demo("--postgres", pg.dsn, "--crash-rate", "0.0001", seconds=15)
        wait_until(lambda: rows_of(pg) >= 1000 and demo.ready() == 200, 30, "a ready demo writing its journal")
        pg.signal_all(signal.SIGSTOP)
        wait_until(lambda: demo.ready() == 503, 20, "/readyz to say not ready during the freeze")
        pg.signal_all(signal.SIGCONT)
        wait_until(lambda: demo.ready() == 200, 20, "/readyz to say ready after the thaw")
        code, out, err, _ = demo.finish(bound=60)
        assert code == 0, err
        assert_every_event_written_once(out, pg)
    finally:
        pg.stop()


def test_a_postgres_frozen_until_the_end_bounds_the_exit_and_reports_the_loss() -> None:
    pg = Postgres()
    pg.start()
    try:
        demo = Demo("--postgres", pg.dsn, "--crash-rate", "0.0001", seconds=3)
        wait_until(lambda: rows_of(pg) >= 1000, 30, "the journal to be written")
        pg.signal_all(signal.SIGSTOP)
        code, out, err, took = demo.finish(bound=40)
        assert code == 3, err
        assert "journal events it accepted were not written" in err
        appended, written = journal_summary(out)
        assert written < appended
        # The run, the runtime's shutdown flush (5 s) and the journal's close_timeout (5 s), then the cut.
        assert took < 25, took
    finally:
        pg.stop()


def test_a_postgres_killed_mid_run_and_restarted_loses_nothing() -> None:
    pg = Postgres()
    pg.start()
    try:
        demo = Demo("--postgres", pg.dsn, "--crash-rate", "0.0001", seconds=8)
        wait_until(lambda: rows_of(pg) >= 1000, 30, "the journal to be written")
        pg.crash()
        pg.start()  # crash recovery replays the WAL: what was acknowledged is there
        code, out, err, _ = demo.finish(bound=60)
        assert code == 0, err
        assert_every_event_written_once(out, pg)
    finally:
        pg.stop()
