"""Google Gemini image models and Imagen on the Gemini API (docs/providers.md, gemini; ◐).

Two wire forms, chosen by the model name:

- Gemini image models (``gemini-*-image*``): ``POST /models/{model}:generateContent`` with
  ``responseModalities`` and ``imageConfig.aspectRatio``; the image is an ``inlineData`` part.
- Imagen (``imagen-*``): ``POST /models/{model}:predict`` with ``instances``/``parameters``;
  images come back as ``predictions[].bytesBase64Encoded``, filtered ones are dropped.

Both take an aspect ratio, not pixels: the canary's size is sent as the nearest ratio the
model family accepts, and the image is checked for that ratio only (``SizeCheck.ASPECT``)
when the provider's documented resolution for it is within scoring's 3 % of the canary's
ratio; otherwise (e.g. Imagen's 896x1280 for 3:4, or a canary ratio no model offers) the
size is not checked (``SizeCheck.NONE``).

Seeds: Gemini takes ``generationConfig.seed`` (best effort, not bit-exact ❓); Imagen on the
Gemini API takes none, so an Imagen service draws and records no seed.  Neither takes a
negative prompt, so the canary's ``negative_prompt`` is not sent.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, loads, object_at, status_failure
from probes.aspect import close_ratio, nearest_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import decode_base64, sniff_image

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_MODEL = "gemini-2.5-flash-image"
MAX_MODEL_BODY = 1024 * 1024

# aspect ratio -> the documented output size (◐ Gemini 2.5 Flash Image / Imagen 3-4 docs)
GEMINI_RATIOS = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184), "4:3": (1184, 864),
    "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344), "16:9": (1344, 768), "21:9": (1536, 672),
}
IMAGEN_RATIOS = {"1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408), "16:9": (1408, 768)}
# finishReason values that mean the safety system (or the model) refused to draw
BLOCKING_FINISH_REASONS = {"IMAGE_SAFETY", "PROHIBITED_CONTENT", "SAFETY", "NO_IMAGE", "BLOCKLIST", "SPII",
                           "IMAGE_PROHIBITED_CONTENT", "RECITATION", "IMAGE_RECITATION"}
AUTH_STATUSES = {"UNAUTHENTICATED", "PERMISSION_DENIED"}


class GeminiOptions(BaseModel):
    """``options:`` of a gemini service."""

    model_config = ConfigDict(extra="forbid")

    #: send this ratio instead of the one derived from the canary's size
    aspect_ratio: str | None = Field(None, pattern=r"^\d{1,2}:\d{1,2}$")
    #: Gemini only; ``["IMAGE"]`` stops the model from answering with text alone
    response_modalities: list[Literal["TEXT", "IMAGE"]] = ["TEXT", "IMAGE"]
    #: ``imageConfig.imageSize`` (Gemini 3 Pro Image) / ``parameters.imageSize`` (Imagen): "1K", "2K", "4K"
    image_size: str | None = None


class GeminiAdapter(Adapter):
    provider: ClassVar[str] = "gemini"
    key_variable: ClassVar[str] = "GEMINI_API_KEY"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    options_model: ClassVar[type[BaseModel]] = GeminiOptions
    options: GeminiOptions

    def __init__(self, service: Any) -> None:
        super().__init__(service)
        # Imagen on the Gemini API has no seed parameter; the runner reads this per adapter.
        self.supports_seed = not self.is_imagen  # type: ignore[misc]

    @property
    def model(self) -> str:
        return self.service.model or DEFAULT_MODEL

    @property
    def model_path(self) -> str:
        """``models/{model}``, or the model as given when it is already a resource path."""
        return self.model if "/" in self.model else f"models/{self.model}"

    @property
    def is_imagen(self) -> bool:
        return self.model.rsplit("/", 1)[-1].startswith("imagen")

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key()} | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def aspect(self, ctx: ProbeContext) -> tuple[str | None, SizeCheck]:
        """The ratio to send and how scoring should check the image's size."""
        table = IMAGEN_RATIOS if self.is_imagen else GEMINI_RATIOS
        wanted = ctx.canary.dimensions if ctx.canary is not None else None
        ratio = self.options.aspect_ratio
        if wanted is None:
            return ratio, SizeCheck.NONE
        if ratio is None:
            ratio = nearest_ratio(*wanted, table)
        width, height = table.get(ratio, (0, 0))
        close = bool(height) and close_ratio(width / height, wanted[0] / wanted[1])
        return ratio, SizeCheck.ASPECT if close else SizeCheck.NONE

    def request_body(self, ctx: ProbeContext) -> dict[str, Any]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        ratio, _ = self.aspect(ctx)
        if self.is_imagen:
            parameters: dict[str, Any] = {"sampleCount": 1, "includeRaiReason": True}
            if ratio:
                parameters["aspectRatio"] = ratio
            if self.options.image_size:
                parameters["imageSize"] = self.options.image_size
            return {"instances": [{"prompt": ctx.canary.prompt}], "parameters": parameters}
        config: dict[str, Any] = {"responseModalities": list(self.options.response_modalities)}
        image_config = {"aspectRatio": ratio, "imageSize": self.options.image_size}
        if any(image_config.values()):
            config["imageConfig"] = {k: v for k, v in image_config.items() if v}
        if ctx.seed is not None:
            config["seed"] = ctx.seed
        return {"contents": [{"role": "user", "parts": [{"text": ctx.canary.prompt}]}], "generationConfig": config}

    def generate(self, ctx: ProbeContext) -> Generation:
        method = "predict" if self.is_imagen else "generateContent"
        request = Request("POST", f"{self.base_url}/{self.model_path}:{method}", headers=self.headers(),
                          json=self.request_body(ctx), what="generation response")
        reply = self.send(ctx, request, limit=self.service.max_image_bytes * 4 // 3 + 64 * 1024, phase="generation")
        payload, response = reply.object(), reply.response
        if self.is_imagen:
            image, reported = _imagen_image(payload, response), None
        else:
            image, reported = _gemini_image(payload, response), payload.get("modelVersion")
            response_id = payload.get("responseId")
            if isinstance(response_id, str) and response_id:
                ctx.request_id = response_id[:200]
        sniff_image(image)  # a non-image or a truncated one is bad_output
        return Generation(
            image=image,
            http_status=response.status_code,
            request_id=ctx.request_id,
            model_version=reported if isinstance(reported, str) and reported else self.model,
            size_check=self.aspect(ctx)[1],
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        request = Request("GET", f"{self.base_url}/{self.model_path}", headers=self.headers(), what="model description")
        reply = self.send(ctx, request, limit=MAX_MODEL_BODY)
        methods, response = reply.object().get("supportedGenerationMethods"), reply.response
        wanted = "predict" if self.is_imagen else "generateContent"
        detail = None
        if isinstance(methods, list) and wanted not in methods:
            detail = f"model {self.model!r} does not list {wanted!r} among its methods ({', '.join(map(str, methods))})"
        return HealthCheck(http_status=response.status_code, detail=detail)


def _gemini_image(payload: dict[str, Any], response: httpx.Response) -> bytes:
    """The image part of a generateContent answer; every way of not drawing is ``content_filtered``."""
    candidates = payload.get("candidates")
    feedback = object_at(payload, "promptFeedback")
    if not isinstance(candidates, list) or not candidates:
        if feedback.get("blockReason"):
            message = feedback.get("blockReasonMessage")
            raise _filtered(f"prompt blocked: promptFeedback.blockReason {feedback['blockReason']}"
                            + (f" ({message})" if message else ""), response)
        if "promptFeedback" in payload or "usageMetadata" in payload:
            raise _filtered("no candidates in the answer (no blockReason given)", response)
        raise bad_output("response has neither 'candidates' nor 'promptFeedback'", response)
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    finish = candidate.get("finishReason")
    if finish in BLOCKING_FINISH_REASONS:
        message = candidate.get("finishMessage")
        raise _filtered(f"no image: finishReason {finish}" + (f" ({message})" if message else ""), response)
    content = object_at(candidate, "content")
    parts = [part for part in content.get("parts") or [] if isinstance(part, dict)]
    texts = []
    for part in parts:
        inline = part.get("inlineData") or part.get("inline_data")  # REST is camelCase; tolerate snake case
        if part.get("thought"):  # Gemini 3 "thinking" drafts precede the final image
            continue
        if isinstance(inline, dict) and isinstance(inline.get("data"), str) and inline["data"]:
            mime = str(inline.get("mimeType") or inline.get("mime_type") or "")
            if mime and not mime.startswith("image/"):
                continue
            return decode_base64(inline["data"], what="inlineData.data")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
    said = " ".join(texts).strip()
    raise _filtered(f"no image part in the answer (finishReason {finish or 'none'})"
                    + (f"; the model said: {said[:300]!r}" if said else ""), response)


def _imagen_image(payload: dict[str, Any], response: httpx.Response) -> bytes:
    """The first prediction's image; Imagen drops filtered images, so none left is ``content_filtered``."""
    predictions = payload.get("predictions", [])
    if not isinstance(predictions, list):
        raise bad_output("'predictions' is not a list", response)
    reasons = []
    for prediction in predictions:
        if not isinstance(prediction, dict):
            continue
        if isinstance(prediction.get("bytesBase64Encoded"), str) and prediction["bytesBase64Encoded"]:
            return decode_base64(prediction["bytesBase64Encoded"], what="bytesBase64Encoded")
        if prediction.get("raiFilteredReason"):
            reasons.append(str(prediction["raiFilteredReason"]))
    because = f": {'; '.join(reasons)}" if reasons else " (empty predictions)"
    raise _filtered(f"Imagen returned no image, it was filtered{because}", response)


def _filtered(detail: str, response: httpx.Response) -> ProbeFailure:
    return ProbeFailure(Outcome.CONTENT_FILTERED, detail, http_status=response.status_code)


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify a google.rpc error ``{"error": {"code", "message", "status", "details"}}``, tolerantly."""
    status = response.status_code
    error: dict[str, Any] = {}
    try:
        parsed = loads(raw)
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
            parsed = parsed[0]  # some Google front ends wrap the error in a list
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            error = parsed["error"]
    except ValueError:
        pass
    rpc_status = str(error.get("status") or "")
    message = str(error.get("message") or body_text(raw))
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {str(d.get("reason")) for d in details if str(d.get("@type", "")).endswith("ErrorInfo")}
    retry = next((d.get("retryDelay") for d in details if str(d.get("@type", "")).endswith("RetryInfo")), None)
    retry = retry or response.headers.get("retry-after")
    quota_values = [str(v.get("quotaValue")) for d in details if str(d.get("@type", "")).endswith("QuotaFailure")
                    for v in d.get("violations") or [] if isinstance(v, dict)]
    detail = f"HTTP {status}" + (f" {rpc_status}" if rpc_status else "") + f": {message}"
    if reasons:
        detail += f" (reason: {', '.join(sorted(reasons))})"
    if rpc_status in AUTH_STATUSES or status in (401, 403) or any(r.startswith("API_KEY_") for r in reasons):
        outcome = Outcome.AUTH_ERROR  # an invalid key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID
    elif status == 429 or rpc_status == "RESOURCE_EXHAUSTED":
        # Google words every quota error "check your plan and billing details", so the text cannot tell
        # a per-minute limit from money: only depleted prepaid credits (❓ message) or a quota of 0
        # (the plan does not include the model) are operator problems; everything else is a rate limit.
        if "credits are depleted" in message.lower() or "0" in quota_values:
            outcome = Outcome.AUTH_ERROR
        else:
            outcome = Outcome.RATE_LIMITED
            if retry:
                detail += f" (Retry-After: {retry})"
    elif rpc_status == "INVALID_ARGUMENT" and "responsible ai" in message.lower():
        outcome = Outcome.CONTENT_FILTERED  # Imagen's input-stage block (◐)
    else:
        return status_failure(response, detail, auth_statuses=(401, 403))
    return ProbeFailure(outcome, detail, http_status=status)
