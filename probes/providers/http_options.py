"""The ``http`` provider's options: the request template, JSON pointers, and how to poll a job.

Checked when the config is loaded (``HTTPOptions`` is the adapter's ``options_model``), so a typo
in a template or a pointer is a config error with its line, not a failed probe at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_JOB_BODY = 4 * 1024 * 1024
PLACEHOLDERS = ("prompt", "negative_prompt", "seed", "width", "height", "size", "model")
#: a template string that is exactly one of these becomes a JSON number (or null)
NUMERIC_PLACEHOLDERS = ("{seed}", "{width}", "{height}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MISSING = object()


# -- JSON pointers (RFC 6901) -------------------------------------------------------------


def check_pointer(pointer: str) -> str:
    """Reject what is not an RFC 6901 pointer (``""`` or ``/a/0/b``, ``~0`` = ``~``, ``~1`` = ``/``)."""
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"invalid JSON pointer {pointer!r}: must be empty or start with '/' (e.g. /data/0/b64_json)")
    if re.search(r"~(?![01])", pointer):
        raise ValueError(f"invalid JSON pointer {pointer!r}: '~' must be followed by 0 or 1")
    return pointer


JsonPointer = Annotated[str, AfterValidator(check_pointer)]


def resolve(document: Any, pointer: str) -> Any:
    """The value at ``pointer``, or ``MISSING``."""
    if pointer == "":
        return document
    current = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and re.fullmatch(r"0|[1-9]\d*", token) and int(token) < len(current):
            current = current[int(token)]
        else:
            return MISSING
    return current


# -- options ------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSpec(Strict):
    """Where the image is: ``{pointer: /data/0/b64_json}`` (``encoding: base64|url``) or ``{raw: true}``."""

    pointer: JsonPointer | None = None
    encoding: Literal["base64", "url"] = "base64"
    raw: bool = False

    @model_validator(mode="after")
    def _one_place(self) -> ImageSpec:
        if self.raw == (self.pointer is not None):
            raise ValueError("give either 'pointer' (JSON answer) or 'raw: true' (the body is the image)")
        return self


class FilterSpec(Strict):
    """A 2xx answer that is really a safety block: the value at ``pointer`` (or ``header``) is one of ``values``."""

    pointer: JsonPointer | None = None
    header: str | None = None
    values: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_place(self) -> FilterSpec:
        if (self.pointer is None) == (self.header is None):
            raise ValueError("give either 'pointer' or 'header'")
        return self

    def matches(self, response: httpx.Response, payload: Any) -> Any:
        """The blocking value, or None."""
        value = response.headers.get(self.header, MISSING) if self.header else resolve(payload, self.pointer or "")
        return value if value is not MISSING and one_of(value, self.values) else None


class PollSpec(Strict):
    """Submit, then poll until the value at ``status_pointer`` is terminal.

    The job is at the URL found at ``url_pointer`` in the submit answer, or at ``url``
    (``{id}`` replaced by the value at ``id_pointer``), relative to ``base_url``.
    """

    id_pointer: JsonPointer | None = None
    url_pointer: JsonPointer | None = None
    url: str | None = None
    status_pointer: JsonPointer
    #: waiting to start (timed as "queue"); ``pending`` = running (timed as "generation")
    queued: list[Any] = []
    pending: list[Any] = []
    success: list[Any] = Field(min_length=1)
    failure: list[Any] = []
    filtered: list[Any] = []
    #: sent when the deadline passes, e.g. ``/jobs/{id}/cancel``
    cancel_url: str | None = None
    cancel_method: Literal["POST", "PUT", "DELETE"] = "POST"

    @model_validator(mode="after")
    def _where_the_job_is(self) -> PollSpec:
        if self.url_pointer is None and (self.id_pointer is None or self.url is None):
            raise ValueError("give 'url_pointer', or 'id_pointer' with a 'url' template containing {id}")
        for name in ("url", "cancel_url"):
            template = getattr(self, name)
            if template is not None and "{id}" in template and self.id_pointer is None:
                raise ValueError(f"'{name}' uses {{id}} but no 'id_pointer' says where the job id is")
        if self.url is not None and "{id}" not in self.url and self.url_pointer is None:
            raise ValueError("'url' must contain {id}")
        return self


class HealthSpec(Strict):
    method: Literal["GET", "HEAD", "POST"] = "GET"
    path: str = ""
    expect_status: list[int] = [200]

    @field_validator("expect_status", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class HTTPOptions(Strict):
    """``options:`` of an ``http`` service."""

    method: Literal["POST", "PUT", "GET"] = "POST"
    path: str = ""  # placeholders here are URL-encoded: ``/generate?prompt={prompt}``
    body: Any = None  # a JSON template; None = no body
    image: ImageSpec
    request_id_header: str = "x-request-id"
    model_pointer: JsonPointer | None = None
    error_pointer: JsonPointer | None = None
    content_filtered: FilterSpec | None = None
    poll: PollSpec | None = None
    health: HealthSpec | None = None
    auth_header: str = "Authorization"
    #: put before the key (``Bearer KEY``); empty = the key alone (e.g. ``auth_header: x-api-key``)
    auth_scheme: str = "Bearer"

    @field_validator("body", "path")
    @classmethod
    def _known_placeholders(cls, value: Any) -> Any:
        for text in strings_of(value):
            for name in _PLACEHOLDER.findall(text):
                if name not in PLACEHOLDERS:
                    known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                    raise ValueError(f"unknown placeholder {{{name}}} in {text!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def _raw_is_synchronous(self) -> HTTPOptions:
        if self.poll is not None and self.image.raw:
            raise ValueError("'image: {raw: true}' needs a synchronous request; with 'poll', point at the image")
        return self


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*strings_of(key), *strings_of(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return []


def one_of(value: Any, choices: list[Any]) -> bool:
    # YAML `true` must not match a JSON 1, nor "1" match 1: compare type and value
    return any(type(value) is type(choice) and value == choice for choice in choices)


def fill(text: str, values: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """Replace the placeholders in ``text`` (a missing value is empty)."""
    return _PLACEHOLDER.sub(lambda m: escape("" if values[m.group(1)] is None else str(values[m.group(1)])), text)


def render(template: Any, values: dict[str, Any]) -> Any:
    """Fill a body template: ``"{seed}"`` alone becomes the number; elsewhere placeholders are text."""
    if isinstance(template, str):
        if template in NUMERIC_PLACEHOLDERS:
            return values[template[1:-1]]
        return fill(template, values)
    if isinstance(template, dict):
        return {render(key, values): render(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    return template


# -- the adapter --------------------------------------------------------------------------
