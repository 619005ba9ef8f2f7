#!/usr/bin/env python3
"""swarmd's figures (docs/benchmarks.md, "swarmd"), each against a peer in the same run:

  P1 start to ready: a trivial Python agent started by swarmd (swarmctl start) until
     swarmd has its HELLO; peer: the same agent started directly, until it prints that
     it is connected.
  P2 restart after SIGKILL: kill -9 the agent, until swarmd has the new one's HELLO;
     peer: P1's direct start (a restart cannot beat a cold start).
  P3 idle: swarmd's CPU (% of a core) and RSS with 200 idle processes; peer: the same
     swarmd with none (3 runs each, alternating; medians).
  P4 output: swarmd's CPU per line while a process prints 1M lines of 100 bytes (read,
     counted, kept, written to swarmd's log on /dev/null); peer: `cat` reading the same
     output into /dev/null (medians of up to 5 runs).

Usage: benchmarks/swarmd/swarmd_bench.py [--build build] [--repeat 5] [--only P1,P3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).resolve().parent / "trivial_agent.py"
PYTHON = "/usr/bin/python3"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, build: Path, folder: Path, processes: str) -> None:
        self.admin = f"127.0.0.1:{free_port()}"
        self.gateway = f"tcp://127.0.0.1:{free_port()}"
        self.token_file = folder / "token"
        config = folder / "swarm.yaml"
        config.write_text(f"admin: {{listen: \"{self.admin}\", token_file: \"{self.token_file}\"}}\n"
                          f"gateway: {{bind: \"{self.gateway}\"}}\nprocesses:\n{processes}")
        self.proc = subprocess.Popen([str(build / "apps/swarmd/swarmd"), "--config", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait(lambda: self.token_file.exists() and self.get("/debug/status"))

    def get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
                return json.loads(r.read()) if path.startswith("/debug") else r.read().decode()
        except OSError:
            return None

    def post(self, path: str) -> None:
        token = self.token_file.read_text().strip()
        request = urllib.request.Request(f"http://{self.admin}{path}", data=b"", method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        urllib.request.urlopen(request, timeout=5).read()

    def process(self, name: str) -> dict:
        return next(p for p in self.get("/debug/processes")["processes"] if p["name"] == name)

    def wait(self, condition, timeout: float = 60, interval: float = 0.0005) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise SystemExit(f"swarmd_bench: swarmd exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("swarmd_bench: timed out")
            time.sleep(interval)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def direct_start(gateway: str) -> float:
    env = dict(os.environ, SWARM_GATEWAY=gateway, SWARM_NAME=f"direct-{time.monotonic_ns()}")
    t0 = time.perf_counter()
    p = subprocess.Popen([PYTHON, str(AGENT)], stdout=subprocess.PIPE, env=env, text=True)
    assert p.stdout.readline().strip() == "ready"
    elapsed = time.perf_counter() - t0
    p.terminate()
    p.wait()
    return elapsed


def agent_entry() -> str:
    return f"  - {{name: agent, argv: [{PYTHON}, \"{AGENT}\"], restart: permanent, max_restarts: 1000}}\n"


def p1_p2(build: Path, folder: Path, repeat: int) -> dict:
    d = Daemon(build, folder, agent_entry())
    try:
        d.wait(lambda: d.process("agent")["state"] == "running")
        starts, restarts, direct = [], [], []
        for _ in range(repeat):
            d.post("/control/stop?name=agent")
            d.wait(lambda: d.process("agent")["state"] == "stopped")
            t0 = time.perf_counter()
            d.post("/control/start?name=agent")
            d.wait(lambda: d.process("agent")["state"] == "running")
            starts.append(time.perf_counter() - t0)
            pid = d.process("agent")["pid"]
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            d.wait(lambda: (p := d.process("agent"))["state"] == "running" and p["pid"] != pid)
            restarts.append(time.perf_counter() - t0)
            direct.append(direct_start(d.gateway))
    finally:
        d.stop()
    return {"start": starts, "restart": restarts, "direct": direct}


def p3(build: Path, folder: Path, seconds: float, repeat: int) -> dict:
    runs = [p3_once(build, folder, seconds) for _ in range(repeat)]  # 200 and 0 alternate
    return {n: {key: statistics.median(r[n][key] for r in runs) for key in runs[0][n]} for n in (200, 0)}


def p3_once(build: Path, folder: Path, seconds: float) -> dict:
    out = {}
    for n in (200, 0):
        d = Daemon(build, folder, f"  - {{name: idle, argv: [sleep, \"100000\"], expect_hello: false, instances: {n}}}\n"
                   if n else "")
        try:
            d.wait(lambda: sum(p["state"] == "running" for p in d.get("/debug/processes")["processes"]) == n)
            c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            time.sleep(seconds)  # the window: swarmd left alone (CPU time has 10 ms ticks: keep it long)
            cpu = (cpu_seconds(d.proc.pid) - c0) / (time.monotonic() - t0)
            out[n] = {"cpu_percent": 100 * cpu, "rss_kb": rss_kb(d.proc.pid)}
        finally:
            d.stop()
    return out


def p4(build: Path, folder: Path, lines: int, repeat: int) -> dict:
    runs = [p4_once(build, folder, lines) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def p4_once(build: Path, folder: Path, lines: int) -> dict:
    script = f"yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n {lines}"
    d = Daemon(build, folder, f"  - {{name: loud, argv: [sh, -c, \"sleep 0.5; {script}\"], expect_hello: false, restart: temporary}}\n")
    try:
        d.wait(lambda: d.process("loud")["state"] == "running")
        c0 = cpu_seconds(d.proc.pid)
        wanted = f'swarm_process_output_lines_total{{process="loud",stream="stdout"}} {lines}'
        d.wait(lambda: wanted in (d.get("/metrics") or ""), timeout=300, interval=0.1)  # rare: a scrape costs swarmd CPU
        swarmd_cpu = cpu_seconds(d.proc.pid) - c0
    finally:
        d.stop()
    # The peer: cat's own CPU for the same output (from wait4's rusage).
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    src = subprocess.Popen(["sh", "-c", script], stdout=cat.stdin)
    cat.stdin.close()
    src.wait()
    usage = os.wait4(cat.pid, 0)[2]
    return {"swarmd_ns_per_line": 1e9 * swarmd_cpu / lines, "cat_ns_per_line": 1e9 * (usage.ru_utime + usage.ru_stime) / lines}


def median_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--build", default=str(ROOT / "build"), help="build folder with swarmd (default: %(default)s)")
    options.add_argument("--repeat", type=int, default=20, help="P1/P2 samples (default: %(default)s)")
    options.add_argument("--seconds", type=float, default=20, help="P3 window, 3 runs each (default: %(default)s)")
    options.add_argument("--lines", type=int, default=1_000_000, help="P4 lines (default: %(default)s)")
    options.add_argument("--only", default="P1,P3,P4", help="which figures (P1 includes P2; default: %(default)s)")
    args = options.parse_args()
    build = Path(args.build)
    wanted = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "P1" in wanted or "P2" in wanted:
            r = p1_p2(build, folder, args.repeat)
            for key, label in (("start", "P1 start to ready (swarmd)"), ("restart", "P2 restart after SIGKILL"),
                               ("direct", "   peer: direct start")):
                med, p99 = median_p99(r[key])
                print(f"{label:30} median {1e3 * med:7.1f} ms  p99 {1e3 * p99:7.1f} ms  (n={len(r[key])})")
            print(f"{'':30} ratios to the direct start: P1 {statistics.median(r['start']) / statistics.median(r['direct']):.2f}x,"
                  f" P2 {statistics.median(r['restart']) / statistics.median(r['direct']):.2f}x")
        if "P3" in wanted:
            r = p3(build, folder, args.seconds, 3)
            for n in (200, 0):
                print(f"P3 swarmd, {n:3} idle processes    CPU {r[n]['cpu_percent']:.2f}% of a core,"
                      f" RSS {r[n]['rss_kb'] / 1024:.1f} MiB")
            print(f"{'':30} RSS per supervised process: {(r[200]['rss_kb'] - r[0]['rss_kb']) / 200:.1f} kB")
        if "P4" in wanted:
            r = p4(build, folder, args.lines, max(1, min(args.repeat, 5)))
            print(f"P4 output, swarmd             {r['swarmd_ns_per_line']:.0f} ns of CPU per line (median)"
                  f"  (peer cat: {r['cat_ns_per_line']:.0f} ns/line, ratio {r['swarmd_ns_per_line'] / r['cat_ns_per_line']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
