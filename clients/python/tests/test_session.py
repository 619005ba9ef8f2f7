"""The session state machine on its own: frames in, deliveries and frames out.

These check the client's bookkeeping (routing of errors, confirmation
windows, credit, reconnect state); everything about the gateway itself is
tested against the real one in the other test files.
"""

from __future__ import annotations

from typing import Any

import pytest

from swarm_client import protocol as p
from swarm_client.errors import GatewayError, NotConnectedError, ProtocolError, RequestError, SwarmError
from swarm_client.messages import Message, Reply
from swarm_client.session import Backoff, Barrier, Session, routing_id, to_ms


class RecordingSink:
    def __init__(self) -> None:
        self.items: list[Message | Reply] = []
        self.errors: list[SwarmError] = []
        self.closed = False

    def put(self, item: Message | Reply) -> None:
        self.items.append(item)

    def fail(self, error: SwarmError) -> None:
        self.errors.append(error)

    def close(self) -> None:
        self.closed = True


def make_session(**options: Any) -> tuple[Session, list[SwarmError]]:
    errors: list[SwarmError] = []
    session = Session(
        options.pop("name", "tester"),
        inbox=options.pop("inbox", None),
        heartbeat_ms=options.pop("heartbeat_ms", 1000),
        credit=options.pop("credit", None),
        token=options.pop("token", None),
        on_error=errors.append,
        responder=lambda *args: None,
    )
    return session, errors


def welcome(session: Session, **params: Any) -> list[list[bytes]]:
    session.hello()
    result = session.receive(p.encode(p.Welcome({"protocol": 1, "heartbeat_ms": 2000, **params})))
    assert result.opened and session.is_open
    return result.send


def test_hello_carries_the_settings() -> None:
    session, _ = make_session(credit=8, token="s3cret", heartbeat_ms=250)
    frame = p.decode(session.hello())
    assert isinstance(frame, p.Hello)
    assert frame.params == {
        "name": "tester", "protocol": 1, "client": "swarm-python/0.1.0",
        "heartbeat_ms": 250, "credit": 8, "token": "s3cret",
    }


def test_welcome_sets_the_heartbeat_and_replays_subscriptions_and_names() -> None:
    session, _ = make_session()
    sink = RecordingSink()
    assert session.subscribe(5, "a.>", "g", sink) is None  # not connected: recorded only
    assert session.register("svc", RecordingSink()) is None
    replay = welcome(session)
    assert [p.decode(m) for m in replay] == [p.Sub(5, "a.>", "g"), p.Register("svc")]
    assert session.heartbeat_s == 2.0 and session.liveness_s == 6.0


def test_handshake_error_of_any_version_ends_for_good() -> None:
    session, _ = make_session()
    session.hello()
    result = session.receive([b"SW\x02\x7f", b"\x00\x01", b"gateway speaks SWP/1, client sent SWP/2", b"\0" * 8])
    assert result.end is not None and not result.end.reconnect
    assert isinstance(result.end.error, GatewayError) and result.end.error.name == "version_mismatch"


def test_shutting_down_during_handshake_retries() -> None:
    session, _ = make_session()
    session.hello()
    result = session.receive(p.encode(p.Error(p.ErrorCode.SHUTTING_DOWN, "stopping", 0)))
    assert result.end is not None and result.end.reconnect


def test_msg_and_deliver_reach_their_sinks() -> None:
    session, errors = make_session()
    sub, name = RecordingSink(), RecordingSink()
    welcome(session)
    session.subscribe(3, "a.*", "", sub)
    session.register("svc", name)
    session.receive(p.encode(p.Msg(3, "a.b", "client/x", 9, "text/plain", b"hi")))
    session.receive(p.encode(p.Deliver("svc", "<1.2>", 0, "", b"\x00")))
    (msg,) = sub.items
    assert isinstance(msg, Message) and msg.topic == "a.b" and msg.is_request and msg.text() == "hi"
    (delivered,) = name.items
    assert isinstance(delivered, Message) and delivered.name == "svc" and not delivered.is_request
    assert delivered.media_type == "application/octet-stream"
    assert errors == []


def test_replies_stream_then_final_and_nonok_is_final() -> None:
    session, _ = make_session()
    welcome(session)
    sink = RecordingSink()
    session.request(11, "stream", True, 1000, "text/plain", b"2", sink, now=0.0)
    for index, final in ((0, 0), (1, 0), (2, 1)):
        session.receive(p.encode(p.GatewayReply(11, 0, final, "text/plain", str(index).encode())))
    assert [(r.final, r.text()) for r in sink.items] == [(False, "0"), (False, "1"), (True, "2")]
    assert not session.has_pending_requests
    other = RecordingSink()
    session.request(12, "t", False, 1000, "", b"", other, now=0.0)
    session.receive(p.encode(p.GatewayReply(12, p.Status.NO_RESPONDER, 0, "", b"")))
    assert other.items[0].final and other.items[0].status == p.Status.NO_RESPONDER
    assert not session.has_pending_requests


def test_error_routing_by_context() -> None:
    session, errors = make_session()
    welcome(session)
    request, sub = RecordingSink(), RecordingSink()
    session.request(20, "a..b", False, 1000, "", b"", request, now=0.0)
    session.subscribe(21, "x.y", "", sub)
    session.receive(p.encode(p.Error(p.ErrorCode.BAD_FIELD, "REQUEST: topic", 20)))
    session.receive(p.encode(p.Error(p.ErrorCode.TOO_LARGE, "SUB: pattern", 21)))
    session.receive(p.encode(p.Error(p.ErrorCode.NO_SUCH_NAME, "SEND: no agent named nobody", 0)))
    assert [e.name for e in request.errors] == ["bad_field"]
    assert [e.name for e in sub.errors] == ["too_large"]
    assert 21 not in session.subscriptions
    assert [e.name for e in errors if isinstance(e, GatewayError)] == ["no_such_name"]


def test_unknown_request_is_never_taken_for_one_of_our_ids() -> None:
    session, errors = make_session()
    welcome(session)
    request = RecordingSink()
    session.request(30, "t", False, 1000, "", b"", request, now=0.0)
    # The context is the correlation id of a REPLY we sent; it happens to equal our request id.
    session.receive(p.encode(p.Error(p.ErrorCode.UNKNOWN_REQUEST, "REPLY: nobody waits", 30)))
    assert request.errors == [] and session.has_pending_requests
    assert [e.name for e in errors if isinstance(e, GatewayError)] == ["unknown_request"]


def test_barrier_takes_the_errors_between_its_pongs_only() -> None:
    session, errors = make_session()
    welcome(session)
    outcome: list[tuple[list[GatewayError], SwarmError | None]] = []
    messages = session.confirm(p.encode(p.Register("svc")), Barrier(lambda e, f: outcome.append((e, f))))
    assert [p.decode(m) for m in messages] == [p.Ping(), p.Register("svc"), p.Ping()]
    session.receive(p.encode(p.Error(p.ErrorCode.NO_SUCH_NAME, "an earlier SEND", 0)))  # before the first PONG
    session.receive(p.encode(p.Pong()))
    session.receive(p.encode(p.Error(p.ErrorCode.NAME_TAKEN, 'REGISTER: "svc" is taken', 0)))
    assert outcome == []
    session.receive(p.encode(p.Pong()))
    ((window, failure),) = outcome
    assert failure is None and [e.name for e in window] == ["name_taken"]
    assert [e.name for e in errors if isinstance(e, GatewayError)] == ["no_such_name"]


def test_heartbeat_pongs_keep_barriers_aligned() -> None:
    session, _ = make_session()
    welcome(session)
    session.ping()  # a heartbeat
    done: list[bool] = []
    session.ping(Barrier(lambda e, f: done.append(f is None)), closes=True)
    session.receive(p.encode(p.Pong()))
    assert done == []
    session.receive(p.encode(p.Pong()))
    assert done == [True]


def test_ping_from_the_gateway_is_answered() -> None:
    session, _ = make_session()
    welcome(session)
    assert session.receive(p.encode(p.Ping())).send == [p.encode(p.Pong())]


def test_credit_is_granted_back_at_half() -> None:
    session, _ = make_session(credit=4)
    welcome(session)
    epoch = session.epoch
    assert session.consumed(epoch) is None
    assert p.decode(session.consumed(epoch) or []) == p.Credit(2)
    assert session.consumed(epoch - 1) is None  # a message of an older session


def test_messages_nobody_takes_return_their_credit() -> None:
    session, errors = make_session(credit=2)
    welcome(session)
    session.subscribe(5, "a", "", RecordingSink())
    session.unsubscribe(5)
    result = session.receive(p.encode(p.Msg(5, "a", "", 0, "", b"")))  # crossed the UNSUB: expected
    assert [p.decode(m) for m in result.send] == [p.Credit(1)]
    assert errors == []


def test_messages_for_unknown_sids_and_names_are_reported() -> None:
    session, errors = make_session()
    welcome(session)
    session.receive(p.encode(p.Msg(999, "a", "", 0, "", b"")))
    session.receive(p.encode(p.Deliver("nobody", "client/x", 0, "", b"")))
    assert [(e.command, e.field) for e in errors if isinstance(e, ProtocolError)] == [("MSG", "sid"), ("DELIVER", "name")]


def test_deliver_with_an_empty_name_goes_to_the_client_inbox() -> None:
    inbox = RecordingSink()
    session, errors = make_session(inbox=inbox)
    welcome(session)
    session.receive(p.encode(p.Deliver("", "<1:2.0>", 5, "text/plain", b"answer")))
    (msg,) = inbox.items
    assert isinstance(msg, Message) and msg.name == "" and msg.sender == "<1:2.0>" and msg.is_request
    assert errors == []
    session.close(None)
    assert inbox.closed


def test_deliver_with_an_empty_name_and_no_inbox_is_dropped_not_an_error() -> None:
    session, errors = make_session(credit=2)
    welcome(session)
    result = session.receive(p.encode(p.Deliver("", "<1:2.0>", 0, "", b"")))
    assert errors == [] and [p.decode(m) for m in result.send] == [p.Credit(1)]


def test_request_deadline_follows_max_request_timeout() -> None:
    session, _ = make_session()
    assert session.effective_timeout_ms(0) == 0  # not welcomed: unknown
    welcome(session, max_request_timeout_ms=3000)  # heartbeat 2 s: liveness 6 s
    assert session.max_request_timeout_ms == 3000
    assert [session.effective_timeout_ms(t) for t in (0, 1000, 3000, 9000)] == [3000, 1000, 3000, 3000]
    for request_id, timeout_ms in ((1, 0), (2, 9000), (3, 1000)):
        session.request(request_id, "t", False, timeout_ms, "", b"", RecordingSink(), now=0.0)
    assert session.next_deadline() == pytest.approx(1.0 + 6.0 + 1.0)
    session.expire(1.0 + 6.0 + 1.0)
    assert session.next_deadline() == pytest.approx(3.0 + 6.0 + 1.0)
    session.expire(3.0 + 6.0 + 1.0)
    assert not session.has_pending_requests


def test_fatal_error_ends_the_session() -> None:
    session, errors = make_session()
    welcome(session)
    result = session.receive(p.encode(p.Error(p.ErrorCode.SLOW_CONSUMER, "queue full for 10 s", 0)))
    assert result.end is not None and result.end.reconnect
    result = session.receive(p.encode(p.Error(p.ErrorCode.AUTH_FAILED, "bad token", 0)))
    assert result.end is not None and not result.end.reconnect
    assert len(errors) == 2


def test_bye_ends_the_session_for_a_reconnect() -> None:
    session, _ = make_session()
    welcome(session)
    result = session.receive(p.encode(p.Bye("gateway stopping")))
    assert result.end is not None and result.end.reconnect and "gateway stopping" in result.end.reason


def test_connection_lost_fails_requests_and_barriers_keeps_subscriptions() -> None:
    session, _ = make_session()
    welcome(session)
    request, sub = RecordingSink(), RecordingSink()
    session.request(40, "t", False, 1000, "", b"", request, now=0.0)
    session.subscribe(41, "a", "", sub)
    outcome: list[SwarmError | None] = []
    session.confirm(p.encode(p.Register("n")), Barrier(lambda e, f: outcome.append(f)))
    session.connection_lost("heartbeat lost")
    assert isinstance(request.errors[0], RequestError) and request.errors[0].status == p.Status.UNREACHABLE
    assert isinstance(outcome[0], NotConnectedError)
    assert 41 in session.subscriptions and not sub.closed
    with pytest.raises(NotConnectedError):
        session.request(42, "t", False, 1000, "", b"", RecordingSink(), now=0.0)


def test_local_deadline_fails_a_request_the_gateway_never_answers() -> None:
    session, _ = make_session(heartbeat_ms=100)
    session.hello()
    session.receive(p.encode(p.Welcome({"protocol": 1, "heartbeat_ms": 100})))
    sink = RecordingSink()
    session.request(50, "t", False, 500, "", b"", sink, now=10.0)
    deadline = session.next_deadline()
    assert deadline == pytest.approx(10.0 + 0.5 + 0.3 + 1.0)
    session.expire(deadline - 0.01)
    assert sink.errors == []
    session.expire(deadline)
    assert isinstance(sink.errors[0], RequestError) and sink.errors[0].status == p.Status.TIMEOUT


def test_malformed_frame_from_gateway_is_reported() -> None:
    session, errors = make_session()
    welcome(session)
    session.receive([b"SW\x01\x42", b"\0"])
    assert isinstance(errors[0], ProtocolError) and errors[0].command == "MSG"


def test_ids_are_shared_and_never_zero() -> None:
    session, _ = make_session()
    ids = [session.next_id() for _ in range(5)]
    assert ids == sorted(set(ids)) and 0 not in ids


def test_routing_id_and_name_rules() -> None:
    assert routing_id("worker") == b"c/worker"
    assert len(routing_id("x" * 253)) == 255
    for bad in ("", "a b", "tab\t", "x" * 254):
        with pytest.raises(ValueError):
            routing_id(bad)


def test_to_ms() -> None:
    assert to_ms(None, "ttl") == 0 and to_ms(0, "ttl") == 0
    assert to_ms(0.0001, "ttl") == 1 and to_ms(1.5, "ttl") == 1500
    with pytest.raises(ValueError):
        to_ms(-1, "ttl")
    with pytest.raises(ValueError):
        to_ms(2**32 / 1000, "timeout")


def test_backoff_doubles_to_ten_seconds_randomized() -> None:
    backoff = Backoff()
    waits = [backoff.next() for _ in range(12)]
    assert 0.05 <= waits[0] <= 0.1
    assert 0.1 <= waits[1] <= 0.2
    assert all(5.0 <= w <= 10.0 for w in waits[-3:])
    backoff.reset()
    assert backoff.next() <= 0.1
