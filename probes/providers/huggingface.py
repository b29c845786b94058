"""Hugging Face Inference text-to-image (docs/providers.md, huggingface).

``POST {base}/{model}`` with ``{"inputs": prompt, "parameters": {...}}`` answers the raw
image bytes (✅ huggingface_hub ``hf_inference.py``).  The service's ``base_url`` is the
part before the model id (default: the router's ``hf-inference`` provider; the legacy
``https://api-inference.huggingface.co/models`` and Inference Endpoints work the same way).

* ``x-use-cache: false`` is sent unless ``use_cache: true``: Hugging Face serves identical
  inputs from a cache (❓ header name from the docs), which would hide an outage.
* A cold model answers 503 ``{"error": "... currently loading", "estimated_time": 20.0}``:
  the service cannot serve the canary now, so it is ``server_error`` with the estimate.
* Error bodies are ``{"error": str | [str]}`` (◐); 402 means the account's credits ran out.
* The answer names no model revision (❓), so the model id is the reported version.

The health check is ``GET {base}/{model}`` (❓): the same host and path as the canary,
without running the model.  HF has no documented cheap check on the router (the old
``/status/{model}`` endpoint lived on the legacy host only); a 2xx answer, or a 405 that
shows the route exists and the token was accepted, counts as healthy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, classify_status, loads, object_or_empty
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request
from probes.download import sniff_image

DEFAULT_BASE_URL = "https://router.huggingface.co/hf-inference/models"
REQUEST_ID_HEADER = "x-request-id"
MAX_STATUS_BODY = 64 * 1024


class HuggingFaceOptions(BaseModel):
    """``options:`` of a huggingface service; the generation parameters are sent only when set."""

    model_config = ConfigDict(extra="forbid")

    num_inference_steps: int | None = Field(None, ge=1)
    guidance_scale: float | None = Field(None, ge=0)
    scheduler: str | None = None
    use_cache: bool = False  # True lets HF answer from its response cache (hides outages)


class HuggingFaceAdapter(Adapter):
    provider: ClassVar[str] = "huggingface"
    key_variable: ClassVar[str] = "HF_TOKEN"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = HuggingFaceOptions
    options: HuggingFaceOptions

    @property
    def model_url(self) -> str:
        if not self.service.model:
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} has no model (e.g. model: black-forest-labs/FLUX.1-schnell)",
            )
        return f"{self.base_url}/{self.service.model.strip('/')}"

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key()}"}
        if not self.options.use_cache:
            headers["x-use-cache"] = "false"
        return headers | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def request_body(self, ctx: ProbeContext) -> dict[str, Any]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        parameters: dict[str, Any] = {}
        if ctx.canary.negative_prompt:
            parameters["negative_prompt"] = ctx.canary.negative_prompt
        if ctx.canary.dimensions is not None:
            parameters["width"], parameters["height"] = ctx.canary.dimensions
        if ctx.seed is not None:
            parameters["seed"] = ctx.seed
        parameters |= self.options.model_dump(include={"num_inference_steps", "guidance_scale", "scheduler"}, exclude_none=True)
        return {"inputs": ctx.canary.prompt, "parameters": parameters}

    def generate(self, ctx: ProbeContext) -> Generation:
        headers = self.headers() | {"Accept": "image/png"}  # what huggingface_hub sends for image tasks
        request = Request("POST", self.model_url, headers=headers, json=self.request_body(ctx), what="image (max_image_bytes)")
        reply = self.send(ctx, request, limit=self.service.max_image_bytes, phase="generation")
        raw, response = reply.body, reply.response
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/json":  # a 200 that is not an image: say what it was
            raise bad_output(f"expected image bytes, got JSON: {_json_summary(raw)}", response, REQUEST_ID_HEADER)
        sniff_image(raw)  # a non-image or a truncated one is bad_output
        return Generation(
            image=raw,
            http_status=response.status_code,
            request_id=ctx.request_id,
            model_version=self.service.model,
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        request = Request("GET", self.model_url, headers=self.headers(), what="model status")
        reply = self.send(ctx, request, ok=range(200, 300), keep=(405,), limit=MAX_STATUS_BODY)
        response = reply.response
        if reply.status_code == 405:
            return HealthCheck(http_status=405, request_id=ctx.request_id, detail="model route answers (GET not allowed)")
        status = object_or_empty(reply.body)
        state = status.get("state")
        detail = f"model state {state}" if isinstance(state, str) else None
        if status.get("loaded") is False:
            detail = f"model not loaded (state {state or 'unknown'}): the next canary may hit a cold start"
        return HealthCheck(http_status=response.status_code, request_id=ctx.request_id, detail=detail)


def _json_summary(raw: bytes) -> str:
    try:
        loads(raw)
    except ValueError as exc:
        return f"malformed JSON in a {len(raw)}-byte response: {exc}"
    return raw[:300].decode("utf-8", errors="replace")


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify ``{"error": str | [str], "estimated_time"?}`` answers (tolerantly: proxies answer HTML)."""
    body = object_or_empty(raw)
    error = body.get("error")
    if isinstance(error, list):
        error = "; ".join(map(str, error))
    message = str(error or body_text(raw))
    outcome, detail = classify_status(response, f"HTTP {response.status_code}: {message}")  # 402: credits used up
    estimated = body.get("estimated_time")
    if outcome is Outcome.SERVER_ERROR and isinstance(estimated, (int, float)):
        detail += f" (model loading, estimated_time {estimated:g}s)"
    return ProbeFailure(outcome, detail, http_status=response.status_code, request_id=response.headers.get(REQUEST_ID_HEADER))
