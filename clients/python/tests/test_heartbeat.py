"""Heartbeats, liveness and reconnects (section 7)."""

from __future__ import annotations

import time

import pytest

from swarm_client import ErrorCode, NotConnectedError, RequestError
from swarm_client import protocol as p

from conftest import Collector, unique, wait_until

HEARTBEAT_MS = 100


def test_idle_client_stays_connected(start_gateway, connect) -> None:
    gw = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS))
    reconnects, errors = Collector(), Collector()
    client = connect(endpoint=gw.endpoint, heartbeat_ms=HEARTBEAT_MS, on_reconnect=reconnects, on_error=errors)
    session = client.welcome["session"]
    # Idle for 20 heartbeat periods (6 liveness periods): only PINGs keep it alive.
    until = time.monotonic() + 20 * HEARTBEAT_MS / 1000
    while time.monotonic() < until:
        assert client.is_connected
        time.sleep(HEARTBEAT_MS / 1000 / 4)
    assert reconnects.items == [] and errors.items == []
    assert client.welcome["session"] == session
    assert client.request("echo.x", "awake").text() == "awake"


def test_gateway_pings_an_idle_client(start_gateway, raw) -> None:
    gw = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS))
    dealer = raw(gw.endpoint)
    assert dealer.hello(unique("idle"), heartbeat_ms=HEARTBEAT_MS).heartbeat_ms == HEARTBEAT_MS
    dealer.expect(p.Ping, timeout=3 * HEARTBEAT_MS / 1000 + 2, skip=())
    dealer.send_frame(p.Ping())
    dealer.expect(p.Pong)


def test_silent_client_is_dropped_after_liveness(start_gateway, raw) -> None:
    gw = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS))
    dealer = raw(gw.endpoint)
    dealer.hello(unique("silent"), heartbeat_ms=HEARTBEAT_MS)
    # The silence itself is what is tested: any probe would count as a sign
    # of life, so this waits without one, for over 3 liveness periods.
    time.sleep(10 * HEARTBEAT_MS / 1000)
    dealer.send_frame(p.Sub(1, "a.b", ""))
    error = dealer.expect(p.Error, skip=(p.Ping, p.Bye))
    assert error.code == ErrorCode.NO_SESSION


def test_reconnect_after_gateway_restart(start_gateway, connect) -> None:
    first = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS))
    reconnects = Collector()
    topic, name = unique("re"), unique("re-name")
    client = connect(endpoint=first.endpoint, heartbeat_ms=HEARTBEAT_MS, on_reconnect=reconnects)
    sub = client.subscribe(topic)
    client.register(name, lambda msg: msg.reply("still " + msg.text()))

    assert first.terminate() == 0
    wait_until(lambda: not client.is_connected, 10.0, "the client to notice the gateway is gone")
    with pytest.raises((NotConnectedError, RequestError)):
        client.request("echo.x", "during the outage")

    start_gateway("--heartbeat-ms", str(HEARTBEAT_MS), port=first.port)
    (info,) = reconnects.wait_for(1, timeout=30.0)
    assert client.is_connected and info.resubscribed == 1 and info.reregistered == 1
    assert info.down_for > 0 and info.attempts >= 1

    other = connect(endpoint=first.endpoint)
    other.publish(topic, "after")
    assert sub.get(10).text() == "after"
    assert other.request(name, "here", to_name=True).text() == "still here"
