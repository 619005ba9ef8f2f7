#!/usr/bin/env python3
"""Clang's thread-safety analysis over every library and program source of a
build tree (its compile_commands.json): the SWARM_GUARDED_BY / SWARM_REQUIRES
annotations are checked, and any finding fails. GCC, which builds the tree,
ignores them.

    python3 scripts/thread_safety.py [BUILD_DIR]   (default: build)
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def clang_command(entry: dict) -> list[str]:
    """The entry's compiler flags for a syntax-only clang run."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    flags: list[str] = []
    skip = False
    for a in args[1:]:
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a not in ("-c", entry["file"]):
            flags.append(a)
    return ["clang++", "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety", "-Wno-unknown-warning-option",
            *flags, entry["file"]]


def main() -> int:
    build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    db = build / "compile_commands.json"
    if not db.exists():
        print(f"thread_safety: {db} not found: configure the build first (scripts/build)", file=sys.stderr)
        return 2
    # Tests and the CAF peer are left out: tests lock for assertions in ways the analysis cannot follow.
    entries = [e for e in json.loads(db.read_text())
               if "_test" not in e["file"] and "/tests/" not in e["file"] and "/peers/" not in e["file"]]

    def check(entry: dict) -> tuple[str, str]:
        done = subprocess.run(clang_command(entry), cwd=entry["directory"], capture_output=True, text=True)
        findings = [line for line in done.stderr.splitlines() if "thread-safety" in line or " error:" in line]
        return entry["file"], "\n".join(findings) if done.returncode != 0 or findings else ""

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, entries))
    failed = [(f, out) for f, out in results if out]
    for f, out in failed:
        print(out, file=sys.stderr)
    print(f"thread_safety: {len(entries)} files, {len(failed)} with findings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
