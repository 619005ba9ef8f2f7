"""Publish/subscribe, queue groups, sends and their errors (sections 4, 6, 8)."""

from __future__ import annotations

import time

import pytest

from swarm_client import ErrorCode, GatewayError, InboxClosedError

from conftest import Collector, unique, wait_until


def wait_for(sub, predicate, timeout: float = 10.0):
    """The first message of ``sub`` matching ``predicate`` (others, e.g.
    from other tests on a shared topic, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = sub.get(max(0.0, deadline - time.monotonic()))
        if predicate(msg):
            return msg


def wait_for_text(sub, text: str, timeout: float = 10.0):
    return wait_for(sub, lambda m: m.payload == text.encode(), timeout)


def drain_until(sub, marker: str, timeout: float = 10.0) -> list:
    """Messages of ``sub`` up to and including the one with text ``marker``
    (messages from one publisher arrive in order, so nothing sent before the
    marker can come after it)."""
    got = []
    while True:
        msg = sub.get(timeout)
        got.append(msg)
        if msg.text() == marker:
            return got


def test_pub_sub_with_wildcards(connect) -> None:
    root = unique("orders")
    star, tail, publisher = connect(), connect(), connect()
    star_sub = star.subscribe(f"{root}.*.created")
    tail_sub = tail.subscribe(f"{root}.>")
    topics = [f"{root}.eu.created", f"{root}.eu", root, f"{root}.eu.x.created", f"{root}.us.created"]
    for topic in topics:
        publisher.publish(topic, topic)
    publisher.publish(f"{root}.end.created", "end")

    star_got = drain_until(star_sub, "end")
    tail_got = drain_until(tail_sub, "end")
    assert [m.topic for m in star_got] == [f"{root}.eu.created", f"{root}.us.created", f"{root}.end.created"]
    assert [m.topic for m in tail_got] == [
        f"{root}.eu.created", f"{root}.eu", f"{root}.eu.x.created", f"{root}.us.created", f"{root}.end.created",
    ]
    first = star_got[0]
    assert first.sid == star_sub.sid
    assert first.text() == first.topic
    assert first.content_type == "text/plain"
    assert first.sender == f"client/{publisher.name}"
    assert not first.is_request


def test_payload_types(connect) -> None:
    topic = unique("types")
    receiver, sender = connect(), connect()
    sub = receiver.subscribe(topic)
    sender.publish(topic, {"a": [1, 2]})
    sender.publish(topic, bytes(range(256)))
    sender.publish(topic, "ünï")
    sender.publish(topic, b"<x/>", "application/octet-stream; charset=binary")
    as_json, as_bytes, as_text, with_param = (sub.get(10) for _ in range(4))
    assert as_json.content_type == "application/json" and as_json.json() == {"a": [1, 2]}
    assert as_bytes.content_type == "application/octet-stream" and as_bytes.payload == bytes(range(256))
    assert as_text.text() == "ünï"
    assert with_param.media_type == "application/octet-stream"


def test_queue_group_delivers_each_message_once(connect) -> None:
    root = unique("jobs")
    first, second = Collector(), Collector()
    worker_a, worker_b, publisher = connect(), connect(), connect()
    worker_a.subscribe(f"{root}.>", first, queue_group="workers")
    worker_b.subscribe(f"{root}.>", second, queue_group="workers")
    count = 20
    for index in range(count):
        publisher.publish(f"{root}.{index}", str(index))
    wait_until(lambda: len(first.items) + len(second.items) >= count, 10.0, "all jobs")
    for client in (publisher, worker_a, worker_b):
        client.ping()  # anything late would have arrived by now
    received = sorted(int(m.text()) for m in first.items + second.items)
    assert received == list(range(count))


def test_queue_group_spreads_work_over_client_members(connect) -> None:
    # router.md: a group picks its member round robin by default.
    root = unique("spread")
    members = [Collector() for _ in range(3)]
    for collector in members:
        connect().subscribe(f"{root}.>", collector, queue_group="workers")
    publisher = connect()
    for index in range(30):
        publisher.publish(f"{root}.{index}", str(index))
    wait_until(lambda: sum(len(m.items) for m in members) >= 30, 10.0, "all jobs")
    shares = [len(m.items) for m in members]
    assert all(shares), f"every member gets work: {shares}"


def test_unsubscribe_stops_delivery(connect) -> None:
    topic = unique("unsub")
    receiver, sender = connect(), connect()
    got, marker = Collector(), Collector()
    sub = receiver.subscribe(topic, got)
    receiver.subscribe(f"{topic}-marker", marker)
    sender.publish(topic, "before")
    got.wait_for(1)
    sub.unsubscribe()
    receiver.ping()
    sender.publish(topic, "after")
    sender.publish(f"{topic}-marker", "marker")
    marker.wait_for(1)
    receiver.ping()
    assert [m.text() for m in got.items] == ["before"]


def test_iteration_ends_after_unsubscribe(connect) -> None:
    topic = unique("iter")
    receiver, sender = connect(), connect()
    sub = receiver.subscribe(topic)
    sender.publish(topic, "one")
    assert sub.get(10).text() == "one"
    sub.unsubscribe()
    assert list(sub) == []
    with pytest.raises(InboxClosedError):
        sub.get(1)


def test_send_to_echo_comes_back_on_echoed(connect) -> None:
    receiver, sender = connect(), connect()
    sub = receiver.subscribe("echoed")
    payload = unique("hello-echo")
    sender.send("echo", payload)
    msg = wait_for_text(sub, payload)
    assert msg.topic == "echoed" and msg.content_type == "text/plain"


def test_plain_publish_to_echo_topic_is_republished(connect) -> None:
    receiver, sender = connect(), connect()
    sub = receiver.subscribe("echoed")
    marker = unique("m")
    sender.publish("echo.plain", {"marker": marker})
    msg = wait_for(sub, lambda m: m.media_type == "application/json" and m.json().get("marker") == marker)
    assert msg.topic == "echoed"


def test_send_to_missing_name_is_no_such_name(connect) -> None:
    errors = Collector()
    client = connect(on_error=errors)
    missing = unique("nobody")
    client.send(missing, "x")
    error = errors.wait_match(lambda e: isinstance(e, GatewayError) and missing in e.message)
    assert error.code == ErrorCode.NO_SUCH_NAME
    with pytest.raises(GatewayError) as info:
        client.send(missing, "x", confirm=True)
    assert info.value.code == ErrorCode.NO_SUCH_NAME and missing in info.value.message


def test_bad_topic_is_bad_field_and_session_stays(connect) -> None:
    errors = Collector()
    client = connect(on_error=errors)
    client.publish("orders..eu", "x")
    error = errors.wait_match(lambda e: isinstance(e, GatewayError))
    assert error.code == ErrorCode.BAD_FIELD and "orders..eu" in error.message
    with pytest.raises(GatewayError) as info:
        client.publish("orders.*", "x", confirm=True)
    assert info.value.code == ErrorCode.BAD_FIELD and "orders.*" in info.value.message
    assert client.request("echo.x", "still here").text() == "still here"
    client.publish(unique("fine"), "ok", confirm=True)


def test_bad_pattern_is_refused_at_subscribe(connect) -> None:
    client = connect()
    with pytest.raises(GatewayError) as info:
        client.subscribe("a.>.b")
    assert info.value.code == ErrorCode.BAD_FIELD and "a.>.b" in info.value.message
    assert client.subscribe(unique("ok")).sid > 0


def test_unknown_content_type_is_bad_field(connect) -> None:
    client = connect()
    with pytest.raises(GatewayError) as info:
        client.publish(unique("ct"), b"x", "image/x-unknown-to-swarm", confirm=True)
    assert info.value.code == ErrorCode.BAD_FIELD


def test_register_twice_is_name_taken(connect) -> None:
    name = unique("svc")
    connect().register(name)
    with pytest.raises(GatewayError) as info:
        connect().register(name)
    assert info.value.code == ErrorCode.NAME_TAKEN and name in info.value.message


def test_send_between_clients_by_name(connect) -> None:
    name = unique("inbox")
    receiver, sender = connect(), connect()
    inbox = receiver.register(name)
    sender.send(name, {"hello": "there"})
    msg = inbox.get(10)
    assert msg.name == name and msg.json() == {"hello": "there"}
    assert msg.sender == f"client/{sender.name}" and not msg.is_request
    inbox.unregister()
    receiver.ping()
    with pytest.raises(GatewayError) as info:
        sender.send(name, "x", confirm=True)
    assert info.value.code == ErrorCode.NO_SUCH_NAME


def test_credit_flow_delivers_everything(connect) -> None:
    topic = unique("credit")
    receiver, sender = connect(credit=2), connect()
    sub = receiver.subscribe(topic)
    for index in range(20):
        sender.publish(topic, str(index))
    assert [sub.get(10).text() for _ in range(20)] == [str(i) for i in range(20)]



def test_a_send_to_the_client_address_reaches_its_inbox(connect) -> None:
    # "mirror" sends a plain message back to its sender: the client's own
    # address, not one of its names.
    client = connect()
    client.send("mirror", "back to you")
    msg = client.inbox.get(10)
    assert msg.name == "" and msg.text() == "back to you"
    assert msg.sender.startswith("<")
