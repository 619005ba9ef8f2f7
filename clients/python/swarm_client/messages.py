"""Messages and replies as the application sees them, and payload conversion."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from .protocol import Status

__all__ = [
    "OCTET_STREAM",
    "TEXT",
    "JSON",
    "Payload",
    "encode_payload",
    "Message",
    "Reply",
]

OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain"
JSON = "application/json"

Payload = Union[bytes, bytearray, memoryview, str, dict, list]
"""What the sending methods accept: bytes are sent as they are
(``application/octet-stream``), ``str`` as UTF-8 (``text/plain``), ``dict`` and
``list`` as JSON (``application/json``)."""


def encode_payload(payload: Payload, content_type: str | None = None) -> tuple[str, bytes]:
    """Return ``(content type, bytes)`` for ``payload``.

    An explicit ``content_type`` wins over the default derived from the
    payload's Python type (e.g. ``str`` payload sent as ``application/json``
    when it already holds JSON text).
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return content_type or OCTET_STREAM, bytes(payload)
    if isinstance(payload, str):
        return content_type or TEXT, payload.encode("utf-8")
    if isinstance(payload, (dict, list)):
        return content_type or JSON, _json.dumps(payload, separators=(",", ":")).encode("utf-8")
    raise TypeError(f"payload must be bytes, str, dict or list, not {type(payload).__name__}")


def _media_type(content_type: str) -> str:
    """The MIME name without parameters (``"; charset=utf-8"``), lower case;
    empty means ``application/octet-stream`` (section 2)."""
    return content_type.split(";", 1)[0].strip().lower() or OCTET_STREAM


class _PayloadView:
    """Accessors shared by :class:`Message` and :class:`Reply`."""

    payload: bytes
    content_type: str

    @property
    def media_type(self) -> str:
        """The content type without parameters, e.g. ``"text/plain"``."""
        return _media_type(self.content_type)

    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return _json.loads(self.payload)


Responder = Callable[["Message", Payload, bool, Status, Union[str, None]], Any]


@dataclass(frozen=True)
class Message(_PayloadView):
    """A message received on a subscription (``MSG``: ``topic`` and ``sid`` set)
    or sent to this client (``DELIVER``): to a name it registered (``name`` is
    that name) or to its own address (``name`` is empty; see ``client.inbox``).

    ``sender`` is the sending agent's address as text (``<node:index.generation>``),
    ``client/NAME`` for another client, or empty. A non-zero ``correlation_id``
    makes the message a request: answer it with :meth:`reply`.
    """

    payload: bytes
    content_type: str
    sender: str
    correlation_id: int
    topic: str | None = None
    sid: int | None = None
    name: str | None = None
    _responder: Responder | None = field(default=None, repr=False, compare=False)
    _epoch: int = field(default=0, repr=False, compare=False)

    @property
    def is_request(self) -> bool:
        """Whether the sender waits for an answer."""
        return self.correlation_id != 0

    def reply(
        self,
        payload: Payload = b"",
        *,
        final: bool = True,
        status: Status | int = Status.OK,
        content_type: str | None = None,
    ) -> Any:
        """Answer this request through the client that received it.

        ``final=False`` sends a partial reply (a stream continues); a non-ok
        ``status`` is always final with an empty payload. With the asyncio
        client this returns an awaitable: ``await msg.reply(...)``.
        """
        if self._responder is None:
            raise RuntimeError("this message was not received by a client; it cannot be answered")
        return self._responder(self, payload, final, Status(status), content_type)


@dataclass(frozen=True)
class Reply(_PayloadView):
    """One ``REPLY`` to a request of this client.

    ``final`` is False for the partial replies of a stream. ``partials`` (on
    the reply that :meth:`Client.request` returns) holds the partial replies
    that came before the final one, in order.
    """

    request_id: int
    status: Status | int
    final: bool
    content_type: str
    payload: bytes
    partials: tuple[Reply, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the status is ``ok``."""
        return self.status == Status.OK

    @property
    def status_name(self) -> str:
        """The status's name in the specification, e.g. ``"timeout"``."""
        return getattr(self.status, "label", f"status_{int(self.status)}")
