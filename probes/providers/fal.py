"""fal.ai queue API (docs/providers.md, fal): submit to the queue, poll the status URL, fetch the result.

``IN_QUEUE`` is the queue phase, ``IN_PROGRESS`` the generation phase; a failed job still
ends ``COMPLETED``, with ``error``.  The URLs the submit answer returns are always used:
the status and result paths drop the model's sub-path (``fal-ai/flux/schnell`` ->
``fal-ai/flux/requests/<id>``).  At the deadline the request is cancelled (``PUT cancel_url``).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from monitor.enums import Outcome
from probes.answers import body_text, classify_status, object_or_empty
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import download_image
from probes.http import ANY_STATUS
from probes.polling import PhaseClock, cancel_timeout, poll

DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/flux/schnell"
REQUEST_ID_HEADER = "x-fal-request-id"
MAX_BODY = 4 * 1024 * 1024  # status answers carry logs
FIRST_POLL_S = 0.25  # fal's status endpoint is cheap; its own client polls every 0.1 s
MIN_SERVER_TIMEOUT_S = 1.0  # fal rejects X-Fal-Request-Timeout values of 1 s or less
APP_NAMESPACES = ("workflows", "comfy")
SAFETY_ERROR_TYPES = frozenset({"content_policy_violation"})  # ◐ fal's documented model error type


class FalOptions(BaseModel):
    """``options:`` of a fal service."""

    model_config = ConfigDict(extra="forbid")

    image_size: str | None = None  # a named size (square_hd, landscape_16_9, ...) instead of the canary's pixels
    output_format: Literal["jpeg", "png"] | None = None
    num_inference_steps: int | None = None
    enable_safety_checker: bool = True
    input: dict[str, Any] = {}  # extra model inputs; they win over ours


class FalAdapter(Adapter):
    provider: ClassVar[str] = "fal"
    key_variable: ClassVar[str] = "FAL_KEY"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = FalOptions
    options: FalOptions
    request_id_header: ClassVar[str] = REQUEST_ID_HEADER

    @property
    def model(self) -> str:
        return (self.service.model or DEFAULT_MODEL).strip("/")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key()}"} | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def request_body(self, ctx: ProbeContext) -> tuple[dict[str, Any], SizeCheck]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        body: dict[str, Any] = {
            "prompt": ctx.canary.prompt,
            "num_images": 1,
            "enable_safety_checker": self.options.enable_safety_checker,
        }
        if ctx.canary.negative_prompt:
            body["negative_prompt"] = ctx.canary.negative_prompt
        if ctx.seed is not None:
            body["seed"] = ctx.seed
        size_check = SizeCheck.NONE  # a named size need not match the canary's
        if self.options.image_size:
            body["image_size"] = self.options.image_size
        elif ctx.canary.dimensions is not None:
            width, height = ctx.canary.dimensions
            body["image_size"] = {"width": width, "height": height}
            size_check = SizeCheck.EXACT
        body |= self.options.model_dump(include={"output_format", "num_inference_steps"}, exclude_none=True)
        return body | self.options.input, size_check

    def generate(self, ctx: ProbeContext) -> Generation:
        body, size_check = self.request_body(ctx)
        headers = self.headers()
        left = ctx.check_deadline("submit")
        # fal drops the request itself if it has not started by then (◐: the header its client sends)
        submit_headers = headers | ({"X-Fal-Request-Timeout": f"{left:.0f}"} if left > MIN_SERVER_TIMEOUT_S + 1 else {})
        submit = Request("POST", f"{self.base_url}/{self.model}", headers=submit_headers, json=body, what="submit answer")
        queued = self.send(ctx, submit, ok=(200, 201, 202), limit=MAX_BODY, phase="submit").object()
        request_id, status_url, response_url, cancel_url = self._urls(queued)
        status_request = Request("GET", status_url, headers=headers, params={"logs": "1"}, what="status")
        cancel_request = Request("PUT", cancel_url, headers=headers, timeout=cancel_timeout(), what="cancel answer")
        self.check_destinations(ctx, status_request, cancel_request, Request("GET", response_url, what="result"))
        ctx.request_id = request_id
        clock = PhaseClock(ctx, "queue")

        def step() -> dict[str, Any] | None:
            status = self._status(ctx, status_request)
            state = status.get("status") if status else None
            clock.seen("queue" if state in (None, "IN_QUEUE") else "generation")
            return status if state == "COMPLETED" else None

        def cancel() -> None:
            clock.seen()
            self.send(ctx, cancel_request, keep=ANY_STATUS, record=False)

        final = poll(ctx, step, what=f"fal request {request_id}", on_deadline=cancel, first_delay=FIRST_POLL_S)
        if final.get("error"):
            error_type = final.get("error_type")
            outcome = Outcome.CONTENT_FILTERED if error_type in SAFETY_ERROR_TYPES else Outcome.SERVER_ERROR
            raise ProbeFailure(outcome, f"request {request_id} failed: {error_type or 'error'}: {str(final['error'])[:500]}")
        result = self.send(ctx, Request("GET", response_url, headers=headers, what="result"), limit=MAX_BODY,
                           phase="generation").object()
        nsfw = result.get("has_nsfw_concepts")
        if isinstance(nsfw, list) and any(nsfw):
            raise ProbeFailure(Outcome.CONTENT_FILTERED, f"request {request_id}: has_nsfw_concepts={nsfw} (safety checker)")
        image, _ = download_image(ctx, _image_url(result))
        seed = result.get("seed")
        return Generation(
            image=image,
            http_status=ctx.http_status,
            request_id=request_id,
            model_version=self.model,  # fal reports no model version; the endpoint id is the best we have
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else ctx.seed,
            size_check=size_check,
        )

    def _urls(self, queued: dict[str, Any]) -> tuple[str, str, str, str]:
        values = [queued.get(k) for k in ("request_id", "status_url", "response_url", "cancel_url")]
        if not all(isinstance(v, str) and v for v in values):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "submit answer lacks request_id/status_url/response_url/cancel_url")
        return tuple(values)  # type: ignore[return-value]

    def _status(self, ctx: ProbeContext, request: Request) -> dict[str, Any] | None:
        """The status, or None while the queue does not know the request (404: keep polling to the deadline)."""
        reply = self.send(ctx, request, ok=(200, 202), keep=(404,), limit=MAX_BODY)
        return None if reply.status_code == 404 else reply.object()

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        """❓ fal has no documented cheap check: ask the queue for the status of a request that does not exist.

        A 404 means the queue is up and took the key; 401/403 are credentials, 5xx an outage.
        """
        url = f"{self.base_url}/{_app_path(self.model)}/requests/{uuid.UUID(int=0)}/status"
        reply = self.send(ctx, Request("GET", url, headers=self.headers(), what="status"), keep=(200, 202, 404))
        return HealthCheck(http_status=reply.status_code, request_id=ctx.request_id)


def _app_path(model: str) -> str:
    """``owner/alias`` (with its namespace) of an endpoint id: the queue's path for requests."""
    parts = model.split("/")
    return "/".join(parts[:3] if parts[0] in APP_NAMESPACES else parts[:2])


def _image_url(result: dict[str, Any]) -> str:
    images = result.get("images")
    first = images[0] if isinstance(images, list) and images else None
    url = first.get("url") if isinstance(first, dict) else None
    if not isinstance(url, str) or not url:
        raise ProbeFailure(Outcome.BAD_OUTPUT, "result has no image URL in 'images'")
    return url


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify ``{"detail": str | [{"loc", "msg", "type"}], "error_type"?}`` (tolerantly).

    403 also covers a locked account ("Exhausted balance"); 402 is not an auth status here.
    """
    status = response.status_code
    body = object_or_empty(raw)
    detail = body.get("detail")
    types = {body.get("error_type"), response.headers.get("x-fal-error-type")}
    if isinstance(detail, list):
        types |= {item.get("type") for item in detail if isinstance(item, dict)}
        detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    message = str(detail or body_text(raw))
    error_types = sorted(t for t in types if isinstance(t, str) and t)
    text = f"HTTP {status}" + (f" {', '.join(error_types)}" if error_types else "") + f": {message}"
    timeout_type = response.headers.get("x-fal-request-timeout-type")
    outcome, text = classify_status(response, text, auth_statuses=(401, 403))
    if outcome not in (Outcome.AUTH_ERROR, Outcome.RATE_LIMITED):
        if status == 504 and timeout_type:
            outcome = Outcome.TIMEOUT
            text += f" (request timeout fired: {timeout_type})"
        elif SAFETY_ERROR_TYPES & set(error_types):
            outcome = Outcome.CONTENT_FILTERED
    return ProbeFailure(outcome, text, http_status=status, request_id=response.headers.get(REQUEST_ID_HEADER))
