"""What the examples share: finding the client package, the connection
options, and the message when no gateway answers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import swarm_client
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
    import swarm_client


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--endpoint`` and ``--connect-timeout``."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--endpoint", default=os.environ.get("SWARM_GATEWAY", swarm_client.DEFAULT_ENDPOINT),
                        help="gateway endpoint (default: $SWARM_GATEWAY, else %(default)s)")
    result.add_argument("--connect-timeout", type=float, default=5.0,
                        help="seconds to wait for the gateway (default: %(default)s)")
    return result


def connect_failed(program: str, args: argparse.Namespace, error: swarm_client.SwarmError) -> int:
    """Say why the client could not connect; the exit status (2)."""
    if isinstance(error, swarm_client.ConnectTimeoutError):
        print(f"{program}: no gateway answered at {args.endpoint} within {args.connect_timeout} s "
              "(is swarm-gateway running?)", file=sys.stderr)
    else:
        print(f"{program}: {error}", file=sys.stderr)
    return 2
