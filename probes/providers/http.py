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
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, loads, status_failure
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
from probes.providers.http_options import MAX_JOB_BODY, MISSING, HTTPOptions, fill, one_of, render, resolve, strings_of


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
        uses_seed = any("{seed}" in text for text in [*strings_of(self.options.body), self.options.path])
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
            if status is MISSING:
                last["answer"] = f"the last answer had no status at {spec.status_pointer}"
                return None
            last["answer"] = f"the job was still {status!r}"
            if one_of(status, spec.success):
                self._check_filtered(response, answer)
                return reply, answer
            if one_of(status, spec.filtered):
                raise ProbeFailure(Outcome.CONTENT_FILTERED, f"job {job_id or job_url} ended {status!r}"
                                   + self._message_suffix(answer), http_status=response.status_code)
            if one_of(status, spec.failure):
                raise ProbeFailure(Outcome.SERVER_ERROR, f"job {job_id or job_url} failed: status {status!r}"
                                   + self._message_suffix(answer), http_status=response.status_code)
            if (spec.queued or spec.pending) and not one_of(status, [*spec.queued, *spec.pending]):
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
        return "queue" if spec is not None and status is not MISSING and one_of(status, spec.queued) else "generation"

    def _image(self, ctx: ProbeContext, reply: Reply, payload: Any) -> tuple[bytes, str | None]:
        spec = self.options.image
        if spec.raw:
            return payload, sniff_image(payload)
        assert spec.pointer is not None
        value = resolve(payload, spec.pointer)
        if value is MISSING:
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
        return f": {message}" if message is not MISSING and message not in (None, "") else ""

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        """Classify an error status the general way; the message comes from ``error_pointer`` if it resolves."""
        status = response.status_code
        message = None
        if self.options.error_pointer is not None:
            try:
                found = resolve(loads(raw), self.options.error_pointer)
            except ValueError:
                found = MISSING
            if found is not MISSING and found not in (None, ""):
                message = found if isinstance(found, str) else json.dumps(found)
        detail = f"HTTP {status}: {message or body_text(raw)}"
        return status_failure(response, detail, request_id=response.headers.get(self.options.request_id_header))
