#!/usr/bin/env python3
"""How long Swarm takes to write again once a server is back.

Runs swarm-demo against a real Redis (state) or Postgres (journal) on
127.0.0.1, kills the server, keeps it down for --outage seconds, starts it
again, and measures from the moment the server answers (PING, or a psql
SELECT 1) to the moment the demo's /metrics shows a new write
(swarm_state_written_total or swarm_journal_written_total). Prints each
trial and the median.

  scripts/recovery.py redis --outage 1 --trials 5
  scripts/recovery.py postgres --outage 10 --trials 5 --json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from servers import Postgres, Redis, free_port, wait_until  # noqa: E402

SERIES = {"redis": "swarm_state_written_total", "postgres": "swarm_journal_written_total"}


def written(admin: int, series: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:  # the admin port is not up yet
        return 0.0
    m = re.search(rf"^{series}\{{[^}}]*\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def pg_answers(pg: Postgres) -> bool:
    try:
        return pg.query("SELECT 1") == "1"
    except subprocess.CalledProcessError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", choices=["redis", "postgres"])
    ap.add_argument("--outage", type=float, default=1.0, help="seconds the server stays down (default 1)")
    ap.add_argument("--trials", type=int, default=5, help="outages in one run (default 5)")
    ap.add_argument("--build", type=Path, default=ROOT / "build", help="build folder (default build/)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args()
    if args.outage <= 0 or args.trials <= 0:
        ap.error("--outage and --trials must be positive")

    with tempfile.TemporaryDirectory() as folder:
        if args.server == "redis":
            server = Redis(Path(folder))
            server.start()
            flag, answers, down = "--redis", (lambda: server.cli("PING") == "PONG"), server.kill
            target = server.url
        else:
            server = Postgres()
            server.start()
            flag, answers, down = "--postgres", (lambda: pg_answers(server)), server.crash
            target = server.dsn
        admin = free_port()
        seconds = args.trials * (args.outage + 15) + 30
        demo = subprocess.Popen([str(args.build / "apps" / "swarm-demo"), "--agents", "10000", "--crash-rate",
                                 # Journal events come from crashes (about 200 per second here, far below the restart intensity); a crash loses the message it
                                 # handled, so a million in flight keep the traffic up for hours.
                                 "0.000005", "--in-flight", "1000000", "--seconds", str(seconds), "--admin", f"127.0.0.1:{admin}", flag, target],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        series = SERIES[args.server]
        times: list[float] = []
        try:
            wait_until(lambda: written(admin, series) > 0, 60, "the demo's first writes")
            for trial in range(args.trials):
                down()
                time.sleep(args.outage)  # the outage itself: nothing to synchronize with
                server.start()
                back = time.monotonic()
                wait_until(answers, 30, "the server to answer")
                before = written(admin, series)
                wait_until(lambda: written(admin, series) > before, 30, "a write after the server came back")
                times.append(time.monotonic() - back)
                if not args.json:
                    print(f"  trial {trial + 1}: writing again {times[-1] * 1000:.0f} ms after the server was back",
                          flush=True)
                time.sleep(2)  # let the writers settle into their steady state
        finally:
            demo.kill()
            demo.wait()
            server.stop()
    median = statistics.median(times)
    if args.json:
        print(json.dumps({"server": args.server, "outage_s": args.outage, "trials_ms": [t * 1000 for t in times],
                          "median_ms": median * 1000}))
    else:
        print(f"{args.server}, outage {args.outage:g} s: median {median * 1000:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) over {len(times)} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
