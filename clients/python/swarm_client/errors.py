"""Exceptions raised by the Swarm client (docs/protocol.md, section 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import ErrorCode, Status

__all__ = [
    "SwarmError",
    "ProtocolError",
    "GatewayError",
    "RequestError",
    "NotConnectedError",
    "ClientClosedError",
    "ConnectTimeoutError",
    "ConfirmTimeoutError",
    "InboxClosedError",
]


class SwarmError(Exception):
    """Base class of every error this library raises."""


class ProtocolError(SwarmError, ValueError):
    """A malformed SWP frame: too few frames, a field of the wrong size, bad
    UTF-8 or JSON, a bad header or an unknown command.

    ``command`` and ``field`` name what was wrong when known.
    """

    def __init__(self, message: str, command: str | None = None, field: str | None = None) -> None:
        self.command = command
        self.field = field
        super().__init__(message)


class GatewayError(SwarmError):
    """An ``ERROR`` frame from the gateway.

    ``code`` is an :class:`ErrorCode` (or a plain ``int`` for a code this
    library does not know), ``message`` the gateway's text, ``context`` the
    request id or sid the error is about (0: none). ``fatal`` errors end the
    session.
    """

    def __init__(self, code: ErrorCode | int, message: str, context: int = 0) -> None:
        self.code = code
        self.message = message
        self.context = context
        super().__init__(f"{self.name}: {message}" if message else self.name)

    @property
    def name(self) -> str:
        """The error's name as in the specification, e.g. ``"no_such_name"``."""
        return getattr(self.code, "label", f"error_{int(self.code)}")

    @property
    def fatal(self) -> bool:
        """Whether the gateway ends the session after this error."""
        return bool(getattr(self.code, "fatal", False))


class RequestError(SwarmError):
    """A request ended with a non-ok status (a ``REPLY`` status other than 0,
    or a local ``timeout`` / ``unreachable`` when the gateway could not answer)."""

    def __init__(self, status: Status | int, target: str, detail: str = "") -> None:
        self.status = status
        self.target = target
        label: str = getattr(status, "label", f"status_{int(status)}")
        self.status_name = label
        text = f"request to {target!r} failed: {label}"
        super().__init__(f"{text} ({detail})" if detail else text)


class NotConnectedError(SwarmError):
    """The client has no open session right now (it is reconnecting)."""


class ClientClosedError(SwarmError):
    """The client was closed, or its session ended for good (a fatal error);
    ``__cause__`` holds the reason when there is one."""


class ConnectTimeoutError(SwarmError, TimeoutError):
    """No ``WELCOME`` arrived within the connect timeout."""


class ConfirmTimeoutError(SwarmError, TimeoutError):
    """The gateway did not confirm a command (its ``PONG`` did not come back) in time."""


class InboxClosedError(SwarmError):
    """The subscription or name ended (unsubscribed, unregistered, or the
    client closed) and every message it had was read."""
