#!/usr/bin/env python3
"""Telemetry overhead, side by side: swarm-bench runs of the same workload with
telemetry off, on, and on with the CPU profiler sampling at 99 Hz, interleaved
(off, on, profiled, off, ...) so machine noise hits all three alike.

    python3 benchmarks/telemetry_overhead.py [--bench build/benchmarks/swarm-bench]
                                             [--workloads W2 W3] [--rounds 15] [--scale N]

Prints the median of each mode and its ratio to "off" (1.00 = no cost).
"""
import argparse
import json
import statistics
import subprocess
import sys

MODES = {
    "off": ["--telemetry", "off"],
    "on": ["--telemetry", "on"],
    "on+profiler99": ["--telemetry", "on", "--profile-hz", "99"],
}


def run(bench, workload, scale, args):
    out = subprocess.run([bench, workload, "--repeat", "1", "--json", "--scale", str(scale), *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="build/benchmarks/swarm-bench")
    p.add_argument("--workloads", nargs="+", default=["W2", "W3"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--scale", type=int, default=0, help="swarm-bench --scale (0 = standard size); "
                   "longer runs are less noisy")
    a = p.parse_args()
    for w in a.workloads:
        runs = {m: [] for m in MODES}
        for i in range(a.rounds):
            for mode, args in MODES.items():
                runs[mode].append(run(a.bench, w, a.scale, args))
            print(f"\r{w}: round {i + 1}/{a.rounds}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        base = statistics.median(runs["off"])
        for mode, values in runs.items():
            med = statistics.median(values)
            print(f"{w} {mode:14} median {med / 1e6:7.2f} M/s  ratio to off {med / base:5.3f}  "
                  f"(min {min(values) / 1e6:.2f}, max {max(values) / 1e6:.2f})")


if __name__ == "__main__":
    main()
