#!/usr/bin/env python3
"""Fan out N requests at once, gather the answers, and time it.

By default the requests go to the topic ``echo.work`` (answered by the
gateway's demo ``echo`` agent); ``--topic tasks.x`` reaches the
``queue_worker.py`` workers, ``--name NAME`` a named agent or client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from _common import connect_failed, parser, swarm_client
from swarm_client import aio


def parse_args() -> argparse.Namespace:
    options = parser(__doc__)
    target = options.add_mutually_exclusive_group()
    target.add_argument("--topic", default="echo.work", help="topic to ask (default: %(default)s)")
    target.add_argument("--name", help="ask the agent or client registered under this name instead")
    options.add_argument("-n", "--count", type=int, default=10, help="number of requests (default: %(default)s)")
    options.add_argument("--timeout", type=float, default=5.0, help="seconds each request may take (default: %(default)s)")
    return options.parse_args()


async def fan_out(args: argparse.Namespace) -> int:
    target = args.name or args.topic
    try:
        client = await aio.connect(args.endpoint, connect_timeout=args.connect_timeout)
    except swarm_client.SwarmError as exc:
        return connect_failed("fan_out", args, exc)
    async with client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(client.request(target, f"task {i}", timeout=args.timeout, to_name=args.name is not None)
              for i in range(args.count)),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
    failed = 0
    for index, result in enumerate(results):
        if isinstance(result, BaseException):
            failed += 1
            print(f"{index:4}: failed: {result}")
        else:
            answer = result.text() if result.media_type.startswith("text/") else f"{len(result.payload)} bytes"
            print(f"{index:4}: {answer}")
    print(f"{args.count - failed}/{args.count} answered by {target!r} in {elapsed * 1000:.1f} ms "
          f"({args.count / elapsed:.0f} requests/s)")
    return 1 if failed else 0


def main() -> int:
    args = parse_args()
    if args.count < 1:
        print("fan_out: --count must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(fan_out(args))


if __name__ == "__main__":
    sys.exit(main())
