"""Heartbeats, liveness and reconnects (section 7)."""

from __future__ import annotations

import urllib.request

import pytest

from swarm_client import ErrorCode, NotConnectedError, RequestError
from swarm_client import protocol as p

from conftest import Collector, free_port, unique, wait_until

HEARTBEAT_MS = 100


def gateway_metric(port: int, series: str) -> float:
    """A series' value on the gateway's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
    return 0.0


def test_idle_client_stays_connected(start_gateway, connect) -> None:
    admin = free_port()
    gw = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS), "--admin-port", str(admin))
    reconnects, errors = Collector(), Collector()
    client = connect(endpoint=gw.endpoint, heartbeat_ms=HEARTBEAT_MS, on_reconnect=reconnects, on_error=errors)
    session = client.welcome["session"]
    # Idle while the gateway sends 20 messages (its PINGs, one per heartbeat
    # period: over 6 liveness periods): only PINGs keep the session alive.
    out = 'swarm_gateway_frames_total{direction="out"}'
    start = gateway_metric(admin, out)
    wait_until(lambda: client.is_connected and gateway_metric(admin, out) >= start + 20 or not client.is_connected,
               timeout=30, what="20 heartbeat periods")
    assert client.is_connected
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
    admin = free_port()
    gw = start_gateway("--heartbeat-ms", str(HEARTBEAT_MS), "--admin-port", str(admin))
    dealer = raw(gw.endpoint)
    dealer.hello(unique("silent"), heartbeat_ms=HEARTBEAT_MS)
    # Silent (a probe to the gateway would count as a sign of life): watch the
    # gateway end the session from its metrics instead.
    wait_until(lambda: gateway_metric(admin, 'swarm_gateway_sessions_ended_total{reason="heartbeat"}') == 1,
               what="the silent session to end")
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
