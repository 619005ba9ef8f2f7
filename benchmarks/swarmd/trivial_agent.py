#!/usr/bin/env python3
"""The smallest agent: connects (SWARM_GATEWAY, SWARM_NAME from the environment),
says "ready" on stdout, and idles until SIGTERM."""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import swarm_client  # noqa: E402

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # before the client's threads start
with swarm_client.Client():
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
