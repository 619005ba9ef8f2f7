"""Requests, replies and streams (section 5)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from swarm_client import ErrorCode, GatewayError, RequestError, Status

from conftest import Collector, unique


def test_request_to_echo_topic(connect) -> None:
    reply = connect().request("echo.x", "hi")
    assert reply.ok and reply.final and reply.status == Status.OK
    assert reply.text() == "hi" and reply.content_type == "text/plain"
    assert reply.partials == ()


def test_request_to_echo_name(connect) -> None:
    client = connect()
    reply = client.request("echo", {"n": 1}, to_name=True)
    assert reply.media_type == "application/json" and reply.json() == {"n": 1}
    assert client.request("echo", bytes(range(256)), to_name=True).payload == bytes(range(256))


def test_no_responder_is_answered_at_once(connect) -> None:
    client = connect()
    started = time.monotonic()
    with pytest.raises(RequestError) as info:
        client.request(unique("nobody") + ".listens", "x", timeout=20)
    assert info.value.status == Status.NO_RESPONDER and info.value.status_name == "no_responder"
    assert time.monotonic() - started < 10, "answered at once, not at the timeout"


def test_request_to_missing_name_is_dead_agent_at_once(connect) -> None:
    client = connect()
    started = time.monotonic()
    with pytest.raises(RequestError) as info:
        client.request(unique("nobody"), "x", timeout=20, to_name=True)
    assert info.value.status == Status.DEAD_AGENT
    assert time.monotonic() - started < 10


def test_timeout(connect) -> None:
    topic = unique("silent")
    connect().subscribe(topic, lambda msg: None)  # takes requests, never answers
    client = connect()
    started = time.monotonic()
    with pytest.raises(RequestError) as info:
        client.request(topic, "x", timeout=0.5)
    elapsed = time.monotonic() - started
    assert info.value.status == Status.TIMEOUT
    assert 0.45 <= elapsed < 10


def test_stream_from_the_stream_agent(connect) -> None:
    client = connect()
    parts = list(client.request_stream("stream", "5", to_name=True))
    assert [part.text() for part in parts] == ["0", "1", "2", "3", "4", "done"]
    assert [part.final for part in parts] == [False] * 5 + [True]
    reply = client.request("stream.go", "3")
    assert reply.text() == "done" and [part.text() for part in reply.partials] == ["0", "1", "2"]
    assert [part.text() for part in client.request_stream("stream", "0", to_name=True)] == ["done"]


def test_python_responder_by_name(connect) -> None:
    name = unique("upper")
    connect().register(name, lambda msg: msg.reply(msg.text().upper()))
    reply = connect().request(name, "abc", to_name=True)
    assert reply.text() == "ABC"


def test_python_responder_on_a_topic_with_sender_and_correlation(connect) -> None:
    topic = unique("svc")
    seen = Collector()

    def answer(msg) -> None:
        seen(msg)
        msg.reply({"got": msg.text()})

    connect().subscribe(f"{topic}.>", answer, queue_group="svc")
    asker = connect()
    assert asker.request(f"{topic}.do", "task").json() == {"got": "task"}
    (msg,) = seen.items
    assert msg.is_request and msg.topic == f"{topic}.do" and msg.sender == f"client/{asker.name}"


def test_python_responder_streams(connect) -> None:
    name = unique("streamer")
    responder = connect()

    def answer(msg) -> None:
        for index in range(3):
            responder.reply(msg, f"part {index}", final=False)
        responder.reply(msg, "last")

    responder.register(name, answer)
    parts = list(connect().request_stream(name, "go", to_name=True))
    assert [(p.text(), p.final) for p in parts] == [("part 0", False), ("part 1", False), ("part 2", False), ("last", True)]


def test_python_responder_refusing_with_a_status(connect) -> None:
    name = unique("refuser")
    connect().register(name, lambda msg: msg.reply(status=Status.MAILBOX_FULL))
    with pytest.raises(RequestError) as info:
        connect().request(name, "x", to_name=True)
    assert info.value.status == Status.MAILBOX_FULL


def test_reply_after_the_final_is_unknown_request(connect) -> None:
    name = unique("twice")
    errors = Collector()
    responder = connect(on_error=errors)

    def answer(msg) -> None:
        msg.reply("first")
        msg.reply("too late")

    responder.register(name, answer)
    assert connect().request(name, "x", to_name=True).text() == "first"
    error = errors.wait_match(lambda e: isinstance(e, GatewayError))
    assert error.code == ErrorCode.UNKNOWN_REQUEST


def test_request_with_a_bad_topic_raises_the_gateway_error(connect) -> None:
    client = connect()
    with pytest.raises(GatewayError) as info:
        client.request("a..b", "x")
    assert info.value.code == ErrorCode.BAD_FIELD and "a..b" in info.value.message
    assert client.request("echo.x", "next").text() == "next"


def test_concurrent_requests_from_threads(connect) -> None:
    client = connect()
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda i: client.request("echo.x", str(i)).text(), range(40)))
    assert texts == [str(i) for i in range(40)]


def test_callback_may_make_a_blocking_request(connect) -> None:
    name = unique("relay")
    relay = connect()
    relay.register(name, lambda msg: msg.reply(relay.request("echo.x", msg.text() + "!").text()))
    assert connect().request(name, "hop", to_name=True).text() == "hop!"
