"""Python client for SWP/1, the Swarm wire protocol (docs/protocol.md).

A client takes part in a Swarm runtime's messaging as if it were an agent:
it subscribes to topics (wildcards, queue groups), publishes, sends to named
agents, registers names of its own, and makes and answers requests
(streamed replies included).

- :class:`Client`: the blocking API (a background thread does the I/O).
- :mod:`swarm_client.aio`: the asyncio API, ``swarm_client.aio.Client``.
- :mod:`swarm_client.protocol`: the frame codec, usable on its own.
"""

from .client import DEFAULT_ENDPOINT, Client, Inbox, Registration, ReplyStream, Subscription
from .errors import (
    ClientClosedError,
    ConfirmTimeoutError,
    ConnectTimeoutError,
    GatewayError,
    InboxClosedError,
    NotConnectedError,
    ProtocolError,
    RequestError,
    SwarmError,
)
from .messages import Message, Payload, Reply
from .protocol import ErrorCode, Status
from .session import ReconnectInfo

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENDPOINT",
    "Client",
    "Inbox",
    "Subscription",
    "Registration",
    "ReplyStream",
    "Message",
    "Reply",
    "Payload",
    "ReconnectInfo",
    "Status",
    "ErrorCode",
    "SwarmError",
    "ProtocolError",
    "GatewayError",
    "RequestError",
    "NotConnectedError",
    "ClientClosedError",
    "ConnectTimeoutError",
    "ConfirmTimeoutError",
    "InboxClosedError",
    "__version__",
]
