"""What a client does with no gateway at the endpoint, and argument checks."""

from __future__ import annotations

import asyncio
import time

import pytest

from swarm_client import Client, ClientClosedError, ConnectTimeoutError, aio

from conftest import free_port


def test_connect_timeout() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectTimeoutError, match="no WELCOME"):
        Client(endpoint, "lonely", connect_timeout=0.3)
    assert time.monotonic() - started < 5


def test_aio_connect_timeout() -> None:
    async def main() -> None:
        with pytest.raises(ConnectTimeoutError):
            await aio.connect(f"tcp://127.0.0.1:{free_port()}", "lonely", connect_timeout=0.3)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_bad_endpoint() -> None:
    with pytest.raises(Exception, match="cannot connect"):
        Client("nonsense://x", "x", connect_timeout=0.3)


@pytest.mark.parametrize(
    "options",
    [
        {"name": "has space"},
        {"name": "x" * 254},
        {"name": "ok", "curve_server_key": "k" * 40},
        {"name": "ok", "heartbeat_ms": 0},
        {"name": "ok", "credit": 0},
    ],
)
def test_bad_arguments(options) -> None:
    with pytest.raises(ValueError):
        Client(f"tcp://127.0.0.1:{free_port()}", connect_timeout=0.3, **options)


def test_closed_client_refuses_work() -> None:
    async def main() -> None:
        client = aio.Client(f"tcp://127.0.0.1:{free_port()}", "never")
        await client.close()
        await client.close()  # idempotent
        assert client.closed
        with pytest.raises(ClientClosedError):
            await client.connect()

    asyncio.run(main())
