"""POST a JSON body to an alert receiver and sort its answer into a result or a ``DeliveryError``.

Shared by the HTTP channels (webhook, Slack, PagerDuty):

* only http(s) URLs; unless ``allow_private_network`` is set, every address the host resolves to must
  be public, and the connection is pinned to the checked address (the request goes to the IP with the
  original ``Host`` header and TLS server name), so DNS rebinding cannot reach a private address;
* one deadline covers the whole send (DNS, connect, send, answer): the exchange runs in a worker thread
  the caller stops waiting for at the deadline, and httpx's timeouts end the thread soon after;
* 2xx is returned; 429 (``Retry-After`` in seconds or an HTTP date), 408, 5xx and network trouble are
  ``TemporaryError``; redirects (never followed) and every other 4xx are ``PermanentError``;
* errors name the receiver and its host only: a URL's path and query (a Slack webhook's secret part),
  tokens and keys are cut out of anything the receiver said before it goes into a message.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from monitor.alerts.channels.base import PermanentError, TemporaryError
from probes.download import is_public_address

USER_AGENT = "genstatus/0.1"
MAX_ANSWER_BYTES = 64 * 1024  # receivers answer "ok" or a small JSON object; the rest is not read
SNIPPET_CHARS = 200  # how much of an error answer goes into the error message
REDACTED = "[redacted]"

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """A receiver's 2xx answer (the body cut at ``MAX_ANSWER_BYTES``)."""

    status_code: int
    reason: str
    headers: httpx.Headers
    content: bytes

    @property
    def status(self) -> str:
        """E.g. "200 OK"."""
        return f"{self.status_code} {self.reason}".strip()

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


def encode_json(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post_json(
    url: str,
    payload: object,
    *,
    what: str,
    channel_id: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    allow_private_network: bool = False,
    secrets: Iterable[str] = (),
) -> Answer:
    """POST ``payload`` (bytes as they are, anything else as JSON) to ``url`` within ``timeout`` seconds.

    ``what`` names the receiver in errors ("slack webhook"); ``secrets`` are strings that must never
    appear in an error (tokens, keys), besides the URL's path and query, which never do.
    """
    parsed = _parse(url, what)
    where = f"{what} at {parsed.host}"
    hidden = _secrets(url, parsed, secrets)
    body = payload if isinstance(payload, bytes) else encode_json(payload)
    sent_headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json", "Accept": "application/json",
                    **(headers or {})}
    if timeout <= 0:
        raise TemporaryError(f"no time left to post to {where}")

    def exchange() -> Answer:
        target, pin_headers, extensions = _pinned(parsed, allow_private_network, where, channel_id)
        try:
            with httpx.Client(trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout)) as client:
                with client.stream("POST", target, content=body, headers={**sent_headers, **pin_headers},
                                   extensions=extensions) as response:
                    content = _read_some(response)
                    return Answer(response.status_code, response.reason_phrase, response.headers, content)
        except httpx.TimeoutException:
            raise TemporaryError(f"{where} did not answer within {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise TemporaryError(f"cannot post to {where}: {_redact(_describe(exc), hidden)}") from None

    answer = _within(timeout, exchange, where)
    return _classify(answer, where, hidden)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a "Z" ("2024-05-01T12:00:00Z"); a naive datetime is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(url: str, what: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise PermanentError(f"the {what} URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise PermanentError(f"the {what} URL must be an http or https URL")
    return parsed


def _secrets(url: str, parsed: httpx.URL, extra: Iterable[str]) -> list[str]:
    """What must never be echoed: the URL, its path and query and their longer parts, ``extra``."""
    path = parsed.raw_path.decode("ascii", "replace")
    parts = [p for p in re.split(r"[/?&=]", path) if len(p) >= 8]
    found = [url, path if path not in ("", "/") else "", *parts, *extra]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _pinned(
    url: httpx.URL, allow_private_network: bool, where: str, channel_id: str
) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """``(target, headers, extensions)`` reaching ``url`` only at a public address it resolves to."""
    if allow_private_network:
        return url, {}, {}
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TemporaryError(f"cannot resolve {where}: {getattr(exc, 'strerror', None) or exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public_address(address):
            raise PermanentError(
                f"refusing to post to {where}: it resolves to the non-public address {address}. If this "
                f"receiver really is on a private network, set 'allow_private_network: true' on channel {channel_id!r}."
            )
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(addresses[0])), {"Host": url.netloc.decode("ascii")}, extensions


def _within(seconds: float, work: Callable[[], T], where: str) -> T:
    """Run ``work`` in a daemon thread; give up (``TemporaryError``) when it takes longer than ``seconds``.

    httpx's timeouts apply to each connect and each read, so a receiver that trickles its answer
    could keep a send going far longer; the caller's wait is bounded here instead.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="alert-post", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TemporaryError(f"{where} did not answer within {seconds:g}s")
    if failure:
        raise failure[0]
    return outcome[0]


def _read_some(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ANSWER_BYTES:
            break
    return b"".join(chunks)[:MAX_ANSWER_BYTES]


def _describe(exc: httpx.HTTPError) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _classify(answer: Answer, where: str, secrets: Iterable[str]) -> Answer:
    code = answer.status_code
    if 200 <= code < 300:
        return answer
    status = f"HTTP {code}"
    said = _redact(" ".join(answer.content.decode("utf-8", "replace").split()), secrets)
    if len(said) > SNIPPET_CHARS:
        said = said[: SNIPPET_CHARS - 1] + "…"
    reason = f"{where} answered {status}" + (f": {said}" if said else "")
    if code in (408, 429) or code >= 500:
        raise TemporaryError(reason, status=status, retry_after=retry_after(answer.headers.get("retry-after")))
    if 300 <= code < 400:
        reason = f"{where} answered {status}, a redirect (alerts are not sent on to another address)"
    raise PermanentError(reason, status=status)
