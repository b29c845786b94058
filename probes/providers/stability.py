"""Stability AI (docs/providers.md, stability): the v2beta Stable Image API and the v1 REST API.

* ``api: v2beta`` (default): ``POST /v2beta/stable-image/generate/{model}`` with ``model``
  ``core`` (default), ``ultra`` or ``sd3`` (◐).  The body is multipart/form-data even
  though there are no files.  v2beta takes an ``aspect_ratio``, not pixels, and picks its
  own resolution: the canary's size is sent as the nearest supported ratio, and scoring
  checks only the ratio (``SizeCheck.ASPECT``) — or nothing (``NONE``) when the canary's
  ratio is not one Stability offers, because then no answer can match it.
* ``api: v1``: ``POST /v1/generation/{engine_id}/text-to-image`` with JSON (✅); width and
  height are sent as asked (multiples of 64) and checked exactly.

Both answer either raw image bytes (``accept: image``, the default: ``finish-reason`` and
``seed`` headers) or JSON (``accept: json``).  A 200 whose finish reason is
``CONTENT_FILTERED`` carries a blurred image: that is a block (``content_filtered``).  The
seed 0 means "random" on the wire, so a seed is only sent when it is non-zero.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, object_or_empty, parse_json, status_failure
from probes.aspect import close_ratio, nearest_ratio, ratio_value
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import decode_base64, sniff_image

DEFAULT_BASE_URL = "https://api.stability.ai"
DEFAULT_V2_MODEL = "core"
DEFAULT_V1_ENGINE = "stable-diffusion-xl-1024-v1-0"
REQUEST_ID_HEADER = "x-request-id"
MAX_SMALL_BODY = 64 * 1024
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")


class StabilityOptions(BaseModel):
    """``options:`` of a stability service; optional fields are sent only when set."""

    model_config = ConfigDict(extra="forbid")

    api: Literal["v2beta", "v1"] = "v2beta"
    accept: Literal["image", "json"] = "image"  # raw bytes + headers, or a JSON body with base64
    output_format: Literal["png", "jpeg", "webp"] = "png"  # v2beta (sd3: png|jpeg)
    sd3_model: str | None = None  # v2beta sd3: sd3.5-large | sd3.5-large-turbo | sd3.5-medium
    style_preset: str | None = None
    cfg_scale: float | None = Field(None, ge=0, le=35)
    steps: int | None = Field(None, ge=10, le=50)  # v1
    sampler: str | None = None  # v1


class StabilityAdapter(Adapter):
    provider: ClassVar[str] = "stability"
    key_variable: ClassVar[str] = "STABILITY_API_KEY"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = StabilityOptions
    options: StabilityOptions

    @property
    def model(self) -> str:
        default = DEFAULT_V2_MODEL if self.options.api == "v2beta" else DEFAULT_V1_ENGINE
        return self.service.model or default

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"} | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    # -- generation -------------------------------------------------------------------------

    def generate(self, ctx: ProbeContext) -> Generation:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        if self.options.api == "v2beta":
            size_check, request = self._v2beta_request(ctx)
        else:
            size_check, request = SizeCheck.EXACT, self._v1_request(ctx)
        # a base64 answer is ~4/3 of the image, plus JSON around it
        reply = self.send(ctx, request, limit=self.service.max_image_bytes * 4 // 3 + 64 * 1024, phase="generation")
        response = reply.response
        image, finish_reason, seed = self._parse_answer(reply.body, response)
        if finish_reason == "CONTENT_FILTERED":
            raise ProbeFailure(
                Outcome.CONTENT_FILTERED,
                "finish reason CONTENT_FILTERED: the output was flagged and returned blurred",
                http_status=response.status_code,
            )
        if finish_reason not in (None, "SUCCESS"):
            raise ProbeFailure(Outcome.SERVER_ERROR, f"finish reason {finish_reason}", http_status=response.status_code)
        sniff_image(image)  # a non-image or a truncated one is bad_output
        return Generation(
            image=image,
            http_status=response.status_code,
            request_id=ctx.request_id,
            model_version=self._model_version(),
            seed=seed,
            size_check=size_check,
        )

    def _request(self, url: str, **body: Any) -> Request:
        """The generation request: ``body`` is ``json=`` (v1) or ``files=`` (v2beta)."""
        image_accept = "image/*" if self.options.api == "v2beta" else "image/png"
        accept = "application/json" if self.options.accept == "json" else image_accept
        return Request("POST", url, headers=self.headers() | {"Accept": accept}, what="generation response", **body)

    def _model_version(self) -> str:
        # Neither API reports the model in its answer: record what was asked for.
        if self.options.api == "v2beta" and self.model == "sd3" and self.options.sd3_model:
            return f"sd3/{self.options.sd3_model}"
        return self.model

    def _v2beta_request(self, ctx: ProbeContext) -> tuple[SizeCheck, Request]:
        """(size check, request) of a v2beta generation."""
        assert ctx.canary is not None
        fields: dict[str, Any] = {"prompt": ctx.canary.prompt, "output_format": self.options.output_format}
        size_check = SizeCheck.NONE
        if ctx.canary.dimensions is not None:
            ratio, exact = nearest_aspect_ratio(*ctx.canary.dimensions)
            fields["aspect_ratio"] = ratio
            size_check = SizeCheck.ASPECT if exact else SizeCheck.NONE
        if ctx.canary.negative_prompt:
            fields["negative_prompt"] = ctx.canary.negative_prompt
        if ctx.seed:  # 0 = random on the wire
            fields["seed"] = ctx.seed
        if self.model == "sd3" and self.options.sd3_model:
            fields["model"] = self.options.sd3_model
        optional = self.options.model_dump(include={"style_preset", "cfg_scale"}, exclude_none=True)
        # (None, value) parts: httpx then sends multipart/form-data without any file
        files = {name: (None, str(value)) for name, value in (fields | optional).items()}
        return size_check, self._request(f"{self.base_url}/v2beta/stable-image/generate/{self.model}", files=files)

    def _v1_request(self, ctx: ProbeContext) -> Request:
        """The request of a v1 generation."""
        assert ctx.canary is not None
        prompts = [{"text": ctx.canary.prompt, "weight": 1.0}]
        if ctx.canary.negative_prompt:
            prompts.append({"text": ctx.canary.negative_prompt, "weight": -1.0})
        body: dict[str, Any] = {"text_prompts": prompts, "samples": 1}
        if ctx.canary.dimensions is not None:
            width, height = ctx.canary.dimensions
            if width % 64 or height % 64:
                raise ProbeFailure(
                    Outcome.PROBE_ERROR,
                    f"Stability v1 needs width and height in multiples of 64; canary {ctx.canary.id!r} asks for "
                    f"{ctx.canary.size}",
                )
            body |= {"width": width, "height": height}
        if ctx.seed:
            body["seed"] = ctx.seed
        body |= self.options.model_dump(include={"cfg_scale", "steps", "sampler", "style_preset"}, exclude_none=True)
        return self._request(f"{self.base_url}/v1/generation/{self.model}/text-to-image", json=body)

    def _parse_answer(self, raw: bytes, response: httpx.Response) -> tuple[bytes, str | None, int | None]:
        """(image, finish reason, seed) from a raw-image or a JSON answer, whichever arrived."""
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            reason = response.headers.get("finish-reason")
            return raw, reason.upper() if reason else None, _int(response.headers.get("seed"))
        payload = parse_json(raw, response, REQUEST_ID_HEADER)
        if isinstance(payload, dict) and "image" in payload:  # v2beta
            item, key, reason_key = payload, "image", "finish_reason"
        else:  # v1: {"artifacts": [...]}, or a bare list in the 2023 spec
            artifacts = payload.get("artifacts") if isinstance(payload, dict) else payload
            if not isinstance(artifacts, list) or not artifacts or not isinstance(artifacts[0], dict):
                raise bad_output("response has no image ('image' or 'artifacts')", response, REQUEST_ID_HEADER)
            item, key, reason_key = artifacts[0], "base64", "finishReason"
        encoded = item.get(key)
        if not isinstance(encoded, str) or not encoded:
            raise bad_output(f"response has no base64 in {key!r}", response, REQUEST_ID_HEADER)
        reason = item.get(reason_key)
        image = decode_base64(encoded, what=key)
        return image, reason.upper() if isinstance(reason, str) else None, _int(item.get("seed"))

    # -- health -------------------------------------------------------------------------------

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        """``GET /v1/user/balance``: checks the key and the credits in one cheap call."""
        reply = self.send(ctx, Request("GET", f"{self.base_url}/v1/user/balance", headers=self.headers(), what="balance"),
                          limit=MAX_SMALL_BODY)
        payload, response = reply.json(), reply.response
        credits = payload.get("credits") if isinstance(payload, dict) else None
        if not isinstance(credits, (int, float)) or isinstance(credits, bool):
            raise bad_output("balance answer has no numeric 'credits'", response, REQUEST_ID_HEADER)
        if credits <= 0:
            raise ProbeFailure(
                Outcome.AUTH_ERROR, f"no credits left (balance {credits:g})", http_status=response.status_code
            )
        return HealthCheck(http_status=response.status_code, request_id=ctx.request_id, detail=f"{credits:g} credits")


def nearest_aspect_ratio(width: int, height: int) -> tuple[str, bool]:
    """The supported ``aspect_ratio`` closest to ``width:height``, and whether it is within scoring's tolerance."""
    best = nearest_ratio(width, height, ASPECT_RATIOS)
    return best, close_ratio(ratio_value(best), width / height)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify an error: v2beta ``{"id", "name", "errors": [...]}`` or v1 ``{"id", "name", "message"}``."""
    status = response.status_code
    body = object_or_empty(raw)
    name = body.get("name")
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        message = "; ".join(str(error) for error in errors)
    else:
        message = str(body.get("message") or body_text(raw))
    detail = f"HTTP {status}" + (f" {name}" if isinstance(name, str) and name else "") + f": {message}"
    request_id = response.headers.get(REQUEST_ID_HEADER) or (str(body["id"]) if body.get("id") else None)
    if status == 403 and name == "content_moderation":
        return ProbeFailure(Outcome.CONTENT_FILTERED, detail, http_status=status, request_id=request_id)
    return status_failure(response, detail, request_id=request_id)  # (❓ shape of 401/402 bodies)
