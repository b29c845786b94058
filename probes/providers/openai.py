"""OpenAI Images (PROVIDERS.md §1): dall-e-2, dall-e-3 and the GPT-image models.

The API is synchronous: the whole request is the "generation" phase.  OpenAI has
no seed parameter, so none is sent and results are never bit-reproducible.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure
from probes.download import decode_base64, download_image, read_limited, sniff_image

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "dall-e-2"  # what the API itself uses when no model is sent
MAX_ERROR_BODY = 64 * 1024
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
    supports_seed: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel]] = OpenAIOptions
    options: OpenAIOptions

    @property
    def base_url(self) -> str:
        return (self.service.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def model(self) -> str:
        return self.service.model or DEFAULT_MODEL

    @property
    def is_dalle(self) -> bool:
        # Everything newer than DALL·E speaks the GPT-image dialect (no response_format, size "auto").
        return self.model.startswith("dall-e")

    def headers(self) -> dict[str, str]:
        if self.service.api_key is None:
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} has no api_key (set e.g. api_key: ${{OPENAI_API_KEY}})",
            )
        headers = {"Authorization": f"Bearer {self.service.api_key.get_secret_value()}"}
        if self.options.organization:
            headers["OpenAI-Organization"] = self.options.organization
        if self.options.project:
            headers["OpenAI-Project"] = self.options.project
        return headers | self.service.headers

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
        body = self.request_body(ctx)
        headers = self.headers()
        # a base64 answer is ~4/3 of the image, plus JSON around it
        limit = self.service.max_image_bytes * 4 // 3 + 64 * 1024
        with ctx.phase("generation"):
            with ctx.client.stream(
                "POST", f"{self.base_url}/images/generations", json=body, headers=headers, timeout=ctx.timeout()
            ) as response:
                ctx.note_response(response)
                if response.status_code != 200:
                    raise _failure(response, _read_head(ctx, response))
                raw = read_limited(ctx, response, limit, what="generation response")
        payload = _parse_json(raw, response)
        items = payload.get("data")
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise _bad_output("response has no images in 'data'", response)
        item = items[0]
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            image = decode_base64(item["b64_json"], what="b64_json")
            content_type = sniff_image(image)
        elif isinstance(item.get("url"), str) and item["url"]:
            image, content_type = download_image(ctx, item["url"])
        else:
            raise _bad_output("image entry has neither 'b64_json' nor 'url'", response)
        revised = item.get("revised_prompt")
        reported_model = payload.get("model")
        return Generation(
            image=image,
            content_type=content_type,
            http_status=response.status_code,
            request_id=ctx.request_id,
            model_version=reported_model if isinstance(reported_model, str) and reported_model else self.model,
            revised_prompt=revised if isinstance(revised, str) else None,
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        headers = self.headers()
        with ctx.client.stream("GET", f"{self.base_url}/models", headers=headers, timeout=ctx.timeout()) as response:
            ctx.note_response(response)
            if response.status_code != 200:
                raise _failure(response, _read_head(ctx, response))
            raw = read_limited(ctx, response, MAX_LISTING_BODY, what="model listing")
        models = _parse_json(raw, response).get("data")
        if not isinstance(models, list):
            raise _bad_output("model listing has no 'data' list", response)
        listed = {m.get("id") for m in models if isinstance(m, dict)}
        detail = None if self.model in listed else f"model {self.model!r} is not in the {len(listed)} models listed"
        return HealthCheck(http_status=response.status_code, request_id=ctx.request_id, detail=detail)


def _read_head(ctx: ProbeContext, response: httpx.Response) -> bytes:
    """The start of an error body: enough to classify it, however long the body is."""
    head = b""
    for chunk in response.iter_bytes():
        ctx.check_deadline("error body")
        head += chunk
        if len(head) >= MAX_ERROR_BODY:
            break
    return head[:MAX_ERROR_BODY]


def _parse_json(raw: bytes, response: httpx.Response) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise _bad_output(f"malformed JSON in a {len(raw)}-byte response: {exc}", response) from None
    if not isinstance(payload, dict):
        raise _bad_output(f"expected a JSON object, got {type(payload).__name__}", response)
    return payload


def _bad_output(detail: str, response: httpx.Response) -> ProbeFailure:
    return ProbeFailure(
        Outcome.BAD_OUTPUT,
        detail,
        http_status=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify an error answer (``{"error": {"message", "type", "param", "code"}}``, tolerantly)."""
    status = response.status_code
    error: dict[str, Any] = {}
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            error = parsed["error"]
    except ValueError:
        pass
    code, kind = error.get("code"), error.get("type")
    message = error.get("message") or raw[:300].decode("utf-8", errors="replace").strip() or "(empty body)"
    detail = f"HTTP {status}" + "".join(f" {part}" for part in (kind, code) if part) + f": {message}"
    moderation = error.get("moderation_details")
    if code == "billing_hard_limit_reached" or (status == 429 and code == "insufficient_quota"):
        outcome = Outcome.AUTH_ERROR
    elif status in (401, 403):
        outcome = Outcome.AUTH_ERROR
    elif status == 429:
        outcome = Outcome.RATE_LIMITED
        retry_after = response.headers.get("retry-after")
        if retry_after:
            detail += f" (Retry-After: {retry_after}s)"
    elif status == 400 and (code in CONTENT_POLICY_CODES or (kind == "image_generation_user_error" and moderation)):
        outcome = Outcome.CONTENT_FILTERED
        if isinstance(moderation, dict):
            stage = moderation.get("moderation_stage")
            categories = moderation.get("categories") or []
            detail += f" (moderation stage: {stage}; categories: {', '.join(map(str, categories)) or 'none given'})"
    elif 400 <= status < 500:
        outcome = Outcome.CLIENT_ERROR
    elif status >= 500:
        outcome = Outcome.SERVER_ERROR
    else:
        outcome = Outcome.BAD_OUTPUT  # 1xx/3xx: nothing an image API should answer
    return ProbeFailure(outcome, detail, http_status=status, request_id=response.headers.get("x-request-id"))
