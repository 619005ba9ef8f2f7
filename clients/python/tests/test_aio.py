"""The asyncio API against the real gateway."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from swarm_client import ErrorCode, GatewayError, RequestError, Status, aio

from conftest import unique

TEST_TIMEOUT = 30.0


def run(gateway, body: Callable[..., Awaitable[Any]]) -> Any:
    """Run ``body(open_client)`` in a fresh event loop with a deadline; every
    client it opens is closed at the end."""

    async def main() -> Any:
        clients: list[aio.Client] = []

        async def open_client(**options: Any) -> aio.Client:
            options.setdefault("name", unique("aio"))
            client = await aio.connect(options.pop("endpoint", gateway.endpoint), **options)
            clients.append(client)
            return client

        try:
            return await asyncio.wait_for(body(open_client), TEST_TIMEOUT)
        finally:
            for client in clients:
                await client.close()

    return asyncio.run(main())


def test_aio_request(gateway) -> None:
    async def body(open_client) -> None:
        client = await open_client()
        assert client.welcome["protocol"] == 1
        reply = await client.request("echo.x", "hi")
        assert reply.text() == "hi"
        assert (await client.request("echo", {"k": 2}, to_name=True)).json() == {"k": 2}
        with pytest.raises(RequestError) as info:
            await client.request(unique("nobody") + ".x", "x")
        assert info.value.status == Status.NO_RESPONDER
        replies = await asyncio.gather(*(client.request("echo.x", str(i)) for i in range(20)))
        assert [r.text() for r in replies] == [str(i) for i in range(20)]

    run(gateway, body)


def test_aio_subscribe_and_publish(gateway) -> None:
    async def body(open_client) -> None:
        receiver, sender = await open_client(), await open_client()
        root = unique("aio")
        sub = await receiver.subscribe(f"{root}.*")
        for index in range(3):
            await sender.publish(f"{root}.{index}", str(index))
        got = []
        async for msg in sub:
            got.append((msg.topic, msg.text()))
            if len(got) == 3:
                break
        assert got == [(f"{root}.{i}", str(i)) for i in range(3)]
        await sub.unsubscribe()
        assert [m async for m in sub] == []
        with pytest.raises(GatewayError) as info:
            await receiver.subscribe("a..b")
        assert info.value.code == ErrorCode.BAD_FIELD

    run(gateway, body)


def test_aio_stream(gateway) -> None:
    async def body(open_client) -> None:
        client = await open_client()
        parts = [part async for part in client.request_stream("stream", "4", to_name=True)]
        assert [(p.text(), p.final) for p in parts] == [("0", False), ("1", False), ("2", False), ("3", False), ("done", True)]
        reply = await client.request("stream.x", "2")
        assert reply.text() == "done" and [p.text() for p in reply.partials] == ["0", "1"]

    run(gateway, body)


def test_aio_responder_with_coroutine_callback(gateway) -> None:
    async def body(open_client) -> None:
        name = unique("aio-svc")
        responder, asker = await open_client(), await open_client()

        async def answer(msg) -> None:
            for index in range(2):
                await msg.reply(f"p{index}", final=False)
            await responder.reply(msg, msg.text()[::-1])

        await responder.register(name, answer)
        parts = [p.text() async for p in asker.request_stream(name, "abc", to_name=True)]
        assert parts == ["p0", "p1", "cba"]

    run(gateway, body)


def test_aio_send_errors_and_echoed(gateway) -> None:
    async def body(open_client) -> None:
        errors: list[Exception] = []
        client = await open_client(on_error=errors.append)
        sub = await client.subscribe("echoed")
        marker = unique("aio-echo")
        await client.send("echo", marker)
        while (await sub.get(10)).text() != marker:
            pass
        with pytest.raises(GatewayError) as info:
            await client.send(unique("nobody"), "x", confirm=True)
        assert info.value.code == ErrorCode.NO_SUCH_NAME
        await client.publish("bad..topic", "x")
        await client.ping()
        for _ in range(100):  # the error goes through the callback task
            if errors:
                break
            await asyncio.sleep(0.01)
        assert isinstance(errors[0], GatewayError) and errors[0].code == ErrorCode.BAD_FIELD

    run(gateway, body)


def test_aio_connect_refused_token(start_gateway) -> None:
    gw = start_gateway("--token", "t0k3n")

    async def body(open_client) -> None:
        client = await open_client(token="t0k3n")
        assert (await client.request("echo.x", "ok")).text() == "ok"
        with pytest.raises(GatewayError) as info:
            await open_client(token="nope")
        assert info.value.code == ErrorCode.AUTH_FAILED

    run(gw, body)


def test_aio_a_send_to_the_client_address_goes_to_on_message(gateway) -> None:
    async def body(open_client) -> None:
        got: asyncio.Queue = asyncio.Queue()

        async def on_message(message) -> None:
            await got.put(message)

        client = await open_client(on_message=on_message)
        await client.send("mirror", "hi")  # "mirror" answers to the sender's own address
        msg = await asyncio.wait_for(got.get(), 10)
        assert msg.name == "" and msg.text() == "hi"

    run(gateway, body)
