"""The interface every channel implements, and the errors that tell the dispatcher what to do next.

``send(message) -> Receipt`` either returns what the receiver answered or raises:

* ``TemporaryError`` -- try again later (network trouble, 5xx, 429; ``retry_after`` when the
  receiver said how long to wait);
* ``PermanentError`` -- stop: retrying cannot help (webhook gone, credentials refused, recipient
  rejected); the channel is marked failing and the operator is told on the other channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from monitor.alerts.message import Message


class DeliveryError(Exception):
    """A failed send; ``status`` is the receiver's answer when there was one (HTTP status, SMTP code)."""

    permanent = False

    def __init__(self, reason: str, *, status: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class TemporaryError(DeliveryError):
    permanent = False


class PermanentError(DeliveryError):
    permanent = True


@dataclass(frozen=True)
class Receipt:
    """What the receiver answered: a status ("200", "250 OK") and, for threading, references to keep."""

    status: str
    detail: str = ""
    thread: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    """A configured channel.  ``timeout`` bounds one send; ``send`` must honour it."""

    channel_id: str
    timeout: float

    def send(self, message: Message) -> Receipt: ...
