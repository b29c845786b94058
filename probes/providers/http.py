"""Any other HTTP image generator, described in the config (provider key ``http``).

For services genstatus has no adapter for: the ``options`` say how to ask (method, path,
a JSON body template with ``{prompt}``, ``{negative_prompt}``, ``{seed}``, ``{width}``,
``{height}``, ``{size}``, ``{model}``), where the image is in the answer (an RFC 6901 JSON
pointer to base64 or a URL, or the raw body), and optionally how to poll a job until a
terminal status.  Example::

    provider: http
    base_url: https://gen.internal.example.com/api
    options:
      path: /v1/generate
      body: {prompt: "{prompt}", seed: "{seed}", size: [ "{width}", "{height}" ]}
      image: {pointer: /images/0/base64}
      error_pointer: /error/message
      content_filtered: {pointer: /nsfw, values: [true]}

Requests go to ``base_url``'s origin, or to an absolute URL the options name; a job URL the
submit answer names (``url_pointer``) on any other origin is refused (``bad_output``) unless the
service lists it in ``allowed_origins``: the key is never sent where the operator did not say.

Nothing about the service is known, so the rules are the general ones: 401/402/403 are
``auth_error``, 429 ``rate_limited``, other 4xx ``client_error``, 5xx ``server_error``;
a 2xx without the image where the config says it is, is ``bad_output``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, status_failure
from probes.base import (
    Adapter,
    DeadlineExceeded,
    Generation,
    HealthCheck,
    ProbeContext,
    ProbeFailure,
    Reply,
    Request,
    random_seed,
)
from probes.download import decode_base64, download_image, sniff_image
from probes.http import ANY_STATUS
from probes.polling import PhaseClock, cancel_timeout, poll

MAX_JOB_BODY = 4 * 1024 * 1024
PLACEHOLDERS = ("prompt", "negative_prompt", "seed", "width", "height", "size", "model")
#: a template string that is exactly one of these becomes a JSON number (or null)
NUMERIC_PLACEHOLDERS = ("{seed}", "{width}", "{height}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MISSING = object()


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
    """The value at ``pointer``, or ``_MISSING``."""
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
            return _MISSING
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
        value = response.headers.get(self.header, _MISSING) if self.header else resolve(payload, self.pointer or "")
        return value if value is not _MISSING and _one_of(value, self.values) else None


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
        for text in _strings(value):
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


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*_strings(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _one_of(value: Any, choices: list[Any]) -> bool:
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


class HTTPAdapter(Adapter):
    provider: ClassVar[str] = "http"
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = HTTPOptions
    options: HTTPOptions

    @property
    def base_url(self) -> str:
        if not self.service.base_url:
            raise ProbeFailure(Outcome.PROBE_ERROR, f"service {self.service.id!r} (provider http) needs a base_url")
        return self.service.base_url.rstrip("/")

    @property
    def request_id_header(self) -> str:  # type: ignore[override]
        return self.options.request_id_header

    def configured_origins(self) -> list[str]:
        """The origins of absolute URLs in the options: the config sends requests there itself."""
        spec, health = self.options.poll, self.options.health
        named = [self.options.path, spec.url if spec else None, spec.cancel_url if spec else None,
                 health.path if health else None]
        return [url for url in named if url and url.startswith(("http://", "https://"))]

    def url(self, path: str) -> str:
        """``path`` joined to ``base_url``; an absolute http(s) URL is used as is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.service.api_key is not None:
            key = self.service.api_key.get_secret_value()
            headers[self.options.auth_header] = f"{self.options.auth_scheme} {key}" if self.options.auth_scheme else key
        return headers | self.service.headers

    def request_values(self, ctx: ProbeContext) -> dict[str, Any]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        width, height = ctx.canary.dimensions or (None, None)
        return {
            "prompt": ctx.canary.prompt,
            "negative_prompt": ctx.canary.negative_prompt or "",
            # a body that asks for a seed gets one: drawn when the canary fixes none, and recorded
            "seed": ctx.seed if ctx.seed is not None else random_seed(),
            "width": width,
            "height": height,
            "size": ctx.canary.size,
            "model": self.service.model or "",
        }

    def generate(self, ctx: ProbeContext) -> Generation:
        values = self.request_values(ctx)
        body = render(self.options.body, values)
        path = fill(self.options.path, values, escape=lambda text: quote(text, safe=""))
        uses_seed = any("{seed}" in text for text in [*_strings(self.options.body), self.options.path])
        phase = "submit" if self.options.poll else "generation"
        request = Request(self.options.method, self.url(path), headers=self.headers(),
                          json=body if body is not None and self.options.method != "GET" else None)
        reply, payload = self._request(ctx, request, phase=phase)
        request_id = reply.headers.get(self.options.request_id_header)
        if self.options.poll is not None:
            reply, payload, job_id = self._poll(ctx, reply, payload)
            request_id = request_id or job_id
        image, _ = self._image(ctx, reply, payload)
        return Generation(
            image=image,
            http_status=reply.status_code,
            request_id=request_id[:200] if request_id else None,
            model_version=self._model(payload),
            seed=values["seed"] if uses_seed else None,
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        """The configured check, or a GET of ``base_url`` where any answer below 500 counts as up."""
        spec = self.options.health
        method, url = (spec.method, self.url(spec.path)) if spec else ("GET", self.base_url)
        reply = self.send(ctx, Request(method, url, headers=self.headers(), what="health answer"), ok=ANY_STATUS)
        response, head, status = reply.response, reply.body, reply.status_code
        if spec is None:
            if status >= 500:
                raise self.failure(response, head)
            return HealthCheck(http_status=status, request_id=ctx.request_id, detail=None if status < 400 else f"HTTP {status}")
        if status not in spec.expect_status:
            if 200 <= status < 300:
                raise ProbeFailure(Outcome.BAD_OUTPUT, f"health check answered HTTP {status}, expected {spec.expect_status}",
                                   http_status=status)
            raise self.failure(response, head)
        return HealthCheck(http_status=status, request_id=ctx.request_id)

    # -- steps ------------------------------------------------------------------------

    def _request(self, ctx: ProbeContext, request: Request, phase: str) -> tuple[Reply, Any]:
        """Send the generation request; return the answer and its parsed JSON (the bytes, for a raw image)."""
        raw_image = self.options.image.raw and self.options.poll is None
        limit = self.service.max_image_bytes if raw_image else self.service.max_image_bytes * 4 // 3 + 64 * 1024
        reply = self.send(ctx, request, ok=range(200, 300), limit=limit, phase=phase)
        payload = reply.body if raw_image else reply.json()
        self._check_filtered(reply.response, None if raw_image else payload)
        return reply, payload

    def _poll(self, ctx: ProbeContext, submitted: Reply, payload: Any) -> tuple[Reply, Any, str | None]:
        spec = self.options.poll
        assert spec is not None
        job_id = None
        if spec.id_pointer is not None:
            found = resolve(payload, spec.id_pointer)
            if not isinstance(found, (str, int)) or isinstance(found, bool) or found == "":
                raise bad_output(f"no job id at {spec.id_pointer} in the submit answer", submitted.response)
            job_id = str(found)
        if spec.url_pointer is not None:
            found = resolve(payload, spec.url_pointer)
            if not isinstance(found, str) or not found:
                raise bad_output(f"no job URL at {spec.url_pointer} in the submit answer", submitted.response)
            job_url = str(submitted.url.join(found))
        else:
            job_url = self.url(str(spec.url).replace("{id}", quote(job_id or "", safe="")))
        job = Request("GET", job_url, headers=self.headers(), what="job status")
        cancel_request = None
        if spec.cancel_url is not None:
            cancel_request = Request(spec.cancel_method, self.url(spec.cancel_url.replace("{id}", quote(job_id or "", safe=""))),
                                     headers=job.headers, timeout=cancel_timeout(), what="cancel answer")
        self.check_destinations(ctx, job, *([cancel_request] if cancel_request else []))
        last: dict[str, Any] = {"answer": "no poll answered yet"}
        clock = PhaseClock(ctx, self._phase_of(resolve(payload, spec.status_pointer)))

        def step() -> tuple[Reply, Any] | None:
            reply = self.send(ctx, job, ok=range(200, 300), keep=(404, 410),
                              limit=self.service.max_image_bytes * 4 // 3 + MAX_JOB_BODY)
            response = reply.response
            if reply.status_code in (404, 410):
                # an unknown job looks like one not registered yet: only the deadline tells them apart
                last["answer"] = f"the job was unknown (HTTP {reply.status_code})"
                clock.seen()
                return None
            answer = reply.json()
            status = resolve(answer, spec.status_pointer)
            clock.seen(self._phase_of(status))
            if status is _MISSING:
                last["answer"] = f"the last answer had no status at {spec.status_pointer}"
                return None
            last["answer"] = f"the job was still {status!r}"
            if _one_of(status, spec.success):
                self._check_filtered(response, answer)
                return reply, answer
            if _one_of(status, spec.filtered):
                raise ProbeFailure(Outcome.CONTENT_FILTERED, f"job {job_id or job_url} ended {status!r}"
                                   + self._message_suffix(answer), http_status=response.status_code)
            if _one_of(status, spec.failure):
                raise ProbeFailure(Outcome.SERVER_ERROR, f"job {job_id or job_url} failed: status {status!r}"
                                   + self._message_suffix(answer), http_status=response.status_code)
            if (spec.queued or spec.pending) and not _one_of(status, [*spec.queued, *spec.pending]):
                raise bad_output(f"unexpected job status {status!r} at {spec.status_pointer}", response)
            return None

        def cancel() -> None:
            if cancel_request is not None:
                self.send(ctx, cancel_request, keep=ANY_STATUS, record=False)

        try:
            reply, answer = poll(ctx, step, what=f"job {job_id or job_url}", on_deadline=cancel)
        except DeadlineExceeded as exc:
            raise DeadlineExceeded(f"{exc.detail}; {last['answer']}") from None
        return reply, answer, job_id

    def _phase_of(self, status: Any) -> str:
        spec = self.options.poll
        return "queue" if spec is not None and status is not _MISSING and _one_of(status, spec.queued) else "generation"

    def _image(self, ctx: ProbeContext, reply: Reply, payload: Any) -> tuple[bytes, str | None]:
        spec = self.options.image
        if spec.raw:
            return payload, sniff_image(payload)
        assert spec.pointer is not None
        value = resolve(payload, spec.pointer)
        if value is _MISSING:
            raise bad_output(f"no image at {spec.pointer} in the answer" + self._message_suffix(payload), reply.response)
        if not isinstance(value, str) or not value:
            raise bad_output(f"the value at {spec.pointer} is {type(value).__name__}, not a non-empty string", reply.response)
        if spec.encoding == "url" or value.startswith("data:"):
            return download_image(ctx, str(reply.url.join(value)) if spec.encoding == "url" else value)
        image = decode_base64(value, what=f"the image at {spec.pointer}")
        return image, sniff_image(image)

    def _model(self, payload: Any) -> str | None:
        if self.options.model_pointer is not None:
            reported = resolve(payload, self.options.model_pointer)
            if isinstance(reported, str) and reported:
                return reported
        return self.service.model

    def _check_filtered(self, response: httpx.Response, payload: Any) -> None:
        spec = self.options.content_filtered
        if spec is None or (payload is None and spec.header is None):
            return
        value = spec.matches(response, payload)
        if value is not None:
            where = f"header {spec.header}" if spec.header else spec.pointer
            raise ProbeFailure(Outcome.CONTENT_FILTERED, f"blocked by the provider's safety system ({where} = {value!r})"
                               + self._message_suffix(payload), http_status=response.status_code)

    def _message_suffix(self, payload: Any) -> str:
        if self.options.error_pointer is None:
            return ""
        message = resolve(payload, self.options.error_pointer)
        return f": {message}" if message is not _MISSING and message not in (None, "") else ""

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        """Classify an error status the general way; the message comes from ``error_pointer`` if it resolves."""
        status = response.status_code
        message = None
        if self.options.error_pointer is not None:
            try:
                found = resolve(json.loads(raw), self.options.error_pointer)
            except ValueError:
                found = _MISSING
            if found is not _MISSING and found not in (None, ""):
                message = found if isinstance(found, str) else json.dumps(found)
        detail = f"HTTP {status}: {message or body_text(raw)}"
        return status_failure(response, detail, request_id=response.headers.get(self.options.request_id_header))
