"""Reading and classifying providers' answers: the part every adapter shares.

Error bodies are read only as far as ``MAX_ERROR_BODY`` (a proxy's multi-megabyte page must
not eat the deadline), and an error status gets the generic outcome here; each provider
refines it first with its own body rules (content-policy codes, quota wording and so on).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import httpx

from monitor.enums import Outcome
from probes.failure import ProbeFailure

if TYPE_CHECKING:  # pragma: no cover
    from probes.context import ProbeContext

MAX_ERROR_BODY = 64 * 1024
#: a generation answer holds a handful of objects; 40 MB of ``{}`` would take a gigabyte to parse
MAX_JSON_CONTAINERS = 100_000
#: 402 (payment required: credits used up) is the operator's problem like a bad key
AUTH_STATUSES = frozenset({401, 402, 403})


def read_head(ctx: ProbeContext, response: httpx.Response, limit: int = MAX_ERROR_BODY, what: str = "error body") -> bytes:
    """The start of an error body: enough to classify it, however long the body is."""
    head = b""
    for chunk in response.iter_bytes():
        ctx.check_deadline(what)
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def bad_output(detail: str, response: httpx.Response, request_id_header: str | None = None) -> ProbeFailure:
    """``bad_output`` for an answer we cannot use, with its status (and request id, if the provider sends one)."""
    request_id = response.headers.get(request_id_header) if request_id_header else None
    return ProbeFailure(Outcome.BAD_OUTPUT, detail, http_status=response.status_code, request_id=request_id)


class UnsafeJSON(ValueError):
    """JSON too big or too deep to parse safely: refused before (or instead of) building it."""


def loads(raw: bytes | str) -> Any:
    """``json.loads`` for a provider's text: every answer, error bodies included, goes through here.

    Raises ``ValueError`` for malformed JSON and ``UnsafeJSON`` for more than ``MAX_JSON_CONTAINERS``
    objects and arrays (counted at C speed before any is built) or nesting too deep for the parser.
    """
    containers = raw.count(b"{") + raw.count(b"[") if isinstance(raw, bytes) else raw.count("{") + raw.count("[")
    if containers > MAX_JSON_CONTAINERS:
        raise UnsafeJSON(f"{containers} objects and arrays: not a generation result (refused unparsed)")
    try:
        return json.loads(raw)
    except RecursionError:
        raise UnsafeJSON("nested too deeply to read (thousands of levels)") from None


def parse_json(raw: bytes, response: httpx.Response, request_id_header: str | None = None) -> Any:
    """The body as JSON, or ``bad_output``."""
    try:
        return loads(raw)
    except UnsafeJSON as exc:
        raise bad_output(f"a {len(raw)}-byte JSON answer with {exc}", response, request_id_header) from None
    except ValueError as exc:
        raise bad_output(f"malformed JSON in a {len(raw)}-byte response: {exc}", response, request_id_header) from None


def json_object(raw: bytes, response: httpx.Response, request_id_header: str | None = None) -> dict[str, Any]:
    """The body as a JSON object, or ``bad_output``."""
    payload = parse_json(raw, response, request_id_header)
    if not isinstance(payload, dict):
        raise bad_output(f"expected a JSON object, got {type(payload).__name__}", response, request_id_header)
    return payload


def object_or_empty(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``{}`` when it is anything else (an error page from a proxy, say)."""
    try:
        parsed = loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def object_at(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a JSON object, else ``{}``: providers leave nested objects out or null."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def body_text(raw: bytes, empty: str = "(empty body)") -> str:
    """The start of a body as text, for an error detail when it has no message we understand."""
    return raw[:300].decode("utf-8", errors="replace").strip() or empty


def classify_status(
    response: httpx.Response,
    detail: str,
    *,
    auth_statuses: Collection[int] = AUTH_STATUSES,
    retry_after: Any = None,
) -> tuple[Outcome, str]:
    """The generic outcome of an error status, and ``detail`` with the Retry-After of a 429.

    ``retry_after`` replaces the header's value when the provider says it elsewhere.
    """
    status = response.status_code
    if status in auth_statuses:
        return Outcome.AUTH_ERROR, detail
    if status == 429:
        retry = response.headers.get("retry-after") if retry_after is None else retry_after
        if retry not in (None, ""):
            detail += f" (Retry-After: {retry}s)"
        return Outcome.RATE_LIMITED, detail
    if 400 <= status < 500:
        return Outcome.CLIENT_ERROR, detail
    if status >= 500:
        return Outcome.SERVER_ERROR, detail
    return Outcome.BAD_OUTPUT, detail  # 1xx/3xx: nothing an image API should answer (redirects are not followed)


def status_failure(
    response: httpx.Response,
    detail: str,
    *,
    request_id: str | None = None,
    auth_statuses: Collection[int] = AUTH_STATUSES,
    retry_after: Any = None,
) -> ProbeFailure:
    """``classify_status`` as the ``ProbeFailure`` to raise."""
    outcome, detail = classify_status(response, detail, auth_statuses=auth_statuses, retry_after=retry_after)
    return ProbeFailure(outcome, detail, http_status=response.status_code, request_id=request_id)
