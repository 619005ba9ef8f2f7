"""A real swarmd (and swarmctl) on 127.0.0.1 with free ports and a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SWARM_BUILD", ROOT / "build"))
SWARMD = BUILD / "apps" / "swarmd" / "swarmd"
SWARMCTL = BUILD / "apps" / "swarmctl" / "swarmctl"
WORKER = ROOT / "examples" / "python" / "queue_worker.py"
PYTHON = "/usr/bin/python3"  # the Debian one, with pyzmq


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


class Swarmd:
    """swarmd running a config written to `folder`."""

    def __init__(self, folder: Path, config: str, stderr: Any = None, admin_extra: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.admin_extra = admin_extra
        self.admin_port = free_port()
        self.gateway_port = free_port()
        self.token_file = folder / "control.token"
        self.config_path = folder / "swarm.yaml"
        self.write_config(config)
        self.log_path = folder / "swarmd.log"
        log = open(self.log_path, "wb") if stderr is None else stderr
        self.proc = subprocess.Popen([str(SWARMD), "--config", str(self.config_path)], stdout=log, stderr=log,
                                     env=None if env is None else {**os.environ, **env})
        wait_until(self.answers, what="swarmd's admin port")

    def write_config(self, body: str) -> None:
        head = (f"admin: {{{self.admin_extra}listen: \"127.0.0.1:{self.admin_port}\", token_file: \"{self.token_file}\"}}\n"
                f"gateway: {{bind: \"tcp://127.0.0.1:{self.gateway_port}\", heartbeat: 200ms}}\n")
        self.config_path.write_text(head + body)

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    def answers(self) -> bool:
        assert self.proc.poll() is None, f"swarmd exited with {self.proc.returncode}: {self.log()}"
        try:
            return self.get("/debug/status")["pid"] == self.proc.pid
        except (urllib.error.URLError, ConnectionError, KeyError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return json.loads(r.read())

    def http(self, method: str, path: str, token: str | None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://{self.admin}{path}", method=method, data=b"" if method == "POST" else None)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def processes(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.get("/debug/processes")["processes"]}

    def running(self, *names: str) -> bool:
        procs = self.processes()
        return all(n in procs and procs[n]["state"] == "running" for n in names)

    def ctl(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SWARMCTL), "--admin", self.admin, "--token-file", str(self.token_file), *args],
                              capture_output=True, text=True, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def swarmd(tmp_path: Path) -> Iterator[Callable[..., Swarmd]]:
    started: list[Swarmd] = []

    def start(config: str, **options: Any) -> Swarmd:
        d = Swarmd(tmp_path, config, **options)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def worker(name: str, pattern: str, **keys: Any) -> str:
    """A process entry running the Python queue worker."""
    extra = "".join(f"\n    {k}: {v}" for k, v in keys.items())
    return (f"  - name: {name}\n    argv: [{PYTHON}, \"{WORKER}\", --pattern, \"{pattern}\"]\n"
            f"    start_timeout: 20s{extra}\n")


def shell(name: str, script: str, **keys: Any) -> str:
    """A process entry running a shell script, ready once started."""
    keys.setdefault("expect_hello", "false")
    extra = "".join(f"\n    {k}: {v}" for k, v in keys.items())
    return f"  - name: {name}\n    argv: [/bin/sh, -c, {json.dumps(script)}]{extra}\n"
