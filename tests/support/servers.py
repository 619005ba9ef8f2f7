"""Helpers for the Python test suites (tests/faults, tests/dashboards,
scripts/recovery.py): free loopback ports, waiting on a condition with a
deadline, and real Redis and Postgres servers on 127.0.0.1 in temporary
folders, stopped (killed if need be) on exit."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Polls `condition` until it is true or `timeout` s have passed. What the
    suites wait for (a server, a process, a metric) offers nothing to block
    on, so it looks again soon, less often the longer it takes, and never
    sleeps past the deadline."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not (value := condition()):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out after {timeout} s waiting for {what}"
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)
    return value


class Redis:
    """redis-server without persistence unless `appendonly`: a restart comes back empty."""

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.folder, self.appendonly = folder, appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.folder), "--save", "", *durability], stdout=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", 30, "redis-server to answer PING")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout.strip()

    def keys(self) -> int:
        return int(self.cli("DBSIZE") or 0)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.kill()


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    """A Postgres 15 cluster of its own (initdb), fsync on: what it acknowledged survives."""

    def __init__(self) -> None:
        # A folder of its own under /tmp: the postgres user cannot pass through pytest's (mode 0700).
        folder = Path(tempfile.mkdtemp(prefix="swarm-faults-pg-"))
        self.folder = folder
        self.root = folder / "pg"  # the postgres user's (initdb refuses root)
        self.data = self.root / "data"
        self.port = free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        self.running = False
        folder.chmod(0o711)  # the postgres user passes through to its own folder
        self.root.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                    "-E", "UTF8", "--locale=C", "--no-sync"]), check=True, capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-l",
                                    str(self.root / "pg.log"), "-w", "-t", "60", "-o", opts]), check=True,
                       capture_output=True)
        self.running = True

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        children = subprocess.run(["pgrep", "-P", str(self.postmaster())], capture_output=True, text=True).stdout
        return [self.postmaster(), *map(int, children.split())]

    def signal_all(self, sig: int) -> None:
        """The postmaster and every backend: SIGSTOP freezes the whole server."""
        for pid in self.processes():
            os.kill(pid, sig)

    def crash(self) -> None:
        """SIGKILL to the postmaster and every backend; returns when all are gone."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.running = False

        def gone() -> bool:
            for pid in pids:
                try:
                    os.kill(pid, 0)
                    return False
                except ProcessLookupError:
                    pass
            return True
        wait_until(gone, 30, "the killed Postgres processes to be gone")

    def query(self, sql: str) -> str:
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                               "-Atc", sql], capture_output=True, text=True, check=True).stdout.strip()

    def stop(self) -> None:
        if self.running:
            try:
                self.signal_all(signal.SIGCONT)
            except (OSError, ValueError):
                pass
            subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate",
                                        "-w"]), capture_output=True)
            self.running = False
        shutil.rmtree(self.folder, ignore_errors=True)
