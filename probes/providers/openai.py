"""OpenAI Images (docs/providers.md, openai): dall-e-2, dall-e-3 and the GPT-image models.

The API is synchronous: the whole request is the "generation" phase.  OpenAI has
no seed parameter, so none is sent and results are never bit-reproducible.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, object_or_empty, status_failure
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request
from probes.download import decode_base64, download_image, sniff_image

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "dall-e-2"  # what the API itself uses when no model is sent
REQUEST_ID_HEADER = "x-request-id"
MAX_LISTING_BODY = 4 * 1024 * 1024
CONTENT_POLICY_CODES = {"content_policy_violation", "moderation_blocked"}


class OpenAIOptions(BaseModel):
    """``options:`` of an openai service; each is sent only when set."""

    model_config = ConfigDict(extra="forbid")

    quality: str | None = None  # dall-e-3 standard|hd, GPT-image low|medium|high|auto (values keep growing)
    style: Literal["vivid", "natural"] | None = None
    response_format: Literal["b64_json", "url"] | None = None  # dall-e only; default b64_json
    output_format: str | None = None  # GPT-image png|jpeg|webp
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    organization: str | None = None
    project: str | None = None
    user: str | None = None


class OpenAIAdapter(Adapter):
    provider: ClassVar[str] = "openai"
    key_variable: ClassVar[str] = "OPENAI_API_KEY"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel]] = OpenAIOptions
    options: OpenAIOptions

    @property
    def model(self) -> str:
        return self.service.model or DEFAULT_MODEL

    @property
    def is_dalle(self) -> bool:
        # Everything newer than DALL·E speaks the GPT-image dialect (no response_format, size "auto").
        return self.model.startswith("dall-e")

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key()}"}
        if self.options.organization:
            headers["OpenAI-Organization"] = self.options.organization
        if self.options.project:
            headers["OpenAI-Project"] = self.options.project
        return headers | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def request_body(self, ctx: ProbeContext) -> dict[str, Any]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        body: dict[str, Any] = {"model": self.model, "prompt": ctx.canary.prompt, "n": 1}
        if ctx.canary.size != "auto" or not self.is_dalle:
            body["size"] = ctx.canary.size
        if self.is_dalle:
            body["response_format"] = self.options.response_format or "b64_json"
        optional = self.options.model_dump(
            include={"quality", "style", "output_format", "output_compression", "background", "moderation", "user"},
            exclude_none=True,
        )
        return body | optional

    def generate(self, ctx: ProbeContext) -> Generation:
        request = Request("POST", f"{self.base_url}/images/generations", headers=self.headers(),
                          json=self.request_body(ctx), what="generation response")
        # a base64 answer is ~4/3 of the image, plus JSON around it
        reply = self.send(ctx, request, limit=self.service.max_image_bytes * 4 // 3 + 64 * 1024, phase="generation")
        payload, response = reply.object(), reply.response
        items = payload.get("data")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise bad_output("response has no images in 'data'", response, REQUEST_ID_HEADER)
        item = items[0]
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            image = decode_base64(item["b64_json"], what="b64_json")
            sniff_image(image)  # a non-image or a truncated one is bad_output
        elif isinstance(item.get("url"), str) and item["url"]:
            image, _ = download_image(ctx, item["url"])
        else:
            raise bad_output("image entry has neither 'b64_json' nor 'url'", response, REQUEST_ID_HEADER)
        revised = item.get("revised_prompt")
        reported_model = payload.get("model")
        return Generation(
            image=image,
            http_status=response.status_code,
            request_id=ctx.request_id,
            model_version=reported_model if isinstance(reported_model, str) and reported_model else self.model,
            revised_prompt=revised if isinstance(revised, str) else None,
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        reply = self.send(ctx, Request("GET", f"{self.base_url}/models", headers=self.headers(), what="model listing"),
                          limit=MAX_LISTING_BODY)
        models, response = reply.object().get("data"), reply.response
        if not isinstance(models, list):
            raise bad_output("model listing has no 'data' list", response, REQUEST_ID_HEADER)
        listed = {m.get("id") for m in models if isinstance(m, dict)}
        detail = None if self.model in listed else f"model {self.model!r} is not in the {len(listed)} models listed"
        return HealthCheck(http_status=response.status_code, request_id=ctx.request_id, detail=detail)


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify an error answer (``{"error": {"message", "type", "param", "code"}}``, tolerantly)."""
    status = response.status_code
    body = object_or_empty(raw)
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code, kind = error.get("code"), error.get("type")
    message = error.get("message") or body_text(raw)
    detail = f"HTTP {status}" + "".join(f" {part}" for part in (kind, code) if part) + f": {message}"
    moderation = error.get("moderation_details")
    request_id = response.headers.get(REQUEST_ID_HEADER)
    if code == "billing_hard_limit_reached" or (status == 429 and code == "insufficient_quota"):
        return ProbeFailure(Outcome.AUTH_ERROR, detail, http_status=status, request_id=request_id)
    if status == 400 and (code in CONTENT_POLICY_CODES or (kind == "image_generation_user_error" and moderation)):
        if isinstance(moderation, dict):
            stage = moderation.get("moderation_stage")
            categories = moderation.get("categories") or []
            detail += f" (moderation stage: {stage}; categories: {', '.join(map(str, categories)) or 'none given'})"
        return ProbeFailure(Outcome.CONTENT_FILTERED, detail, http_status=status, request_id=request_id)
    # only 401/403: OpenAI signals billing and quota through the codes above
    return status_failure(response, detail, request_id=request_id, auth_statuses=(401, 403))
