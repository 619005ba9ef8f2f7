#!/usr/bin/env python3
"""A worker that takes tasks from a queue group and answers them.

Every worker started with the same ``--group`` shares the tasks published
on ``--pattern``: each task goes to one of them. Start several and watch
``fan_out.py --topic tasks.x`` spread its requests over them.

Under swarmd (examples/swarm.yaml) the environment gives the endpoint, the
name and the group (SWARM_GATEWAY, SWARM_NAME, SWARM_QUEUE_GROUP).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from _common import connect_failed, parser, swarm_client


def parse_args() -> argparse.Namespace:
    options = parser(__doc__)
    options.add_argument("--pattern", default="tasks.>", help="topic pattern to serve (default: %(default)s)")
    options.add_argument("--group", default=os.environ.get("SWARM_QUEUE_GROUP", "workers"),
                         help="queue group shared by the workers (default: $SWARM_QUEUE_GROUP, else %(default)s)")
    options.add_argument("--name", default=os.environ.get("SWARM_NAME", f"worker-{os.getpid()}"),
                         help="client name (default: $SWARM_NAME, else worker-PID)")
    return options.parse_args()


def main() -> int:
    args = parse_args()
    # SIGTERM ends the worker like Ctrl-C: the client then says BYE.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        client = swarm_client.Client(args.endpoint, args.name, connect_timeout=args.connect_timeout)
    except swarm_client.SwarmError as exc:
        return connect_failed("queue_worker", args, exc)
    handled = 0
    with client:
        subscription = client.subscribe(args.pattern, queue_group=args.group)
        print(f"{args.name}: serving {args.pattern!r} in group {args.group!r} at {args.endpoint} (Ctrl-C to stop)", flush=True)
        try:
            for message in subscription:
                handled += 1
                task = message.text() if message.media_type.startswith("text/") else f"{len(message.payload)} bytes"
                if message.is_request:
                    message.reply(f"{args.name} did {task!r}")
                else:
                    print(f"{args.name}: {message.topic}: {task} (no answer wanted)", flush=True)
        except KeyboardInterrupt:
            pass
    print(f"{args.name}: handled {handled} tasks", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
