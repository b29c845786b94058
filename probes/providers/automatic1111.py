"""AUTOMATIC1111 / Forge web UI API (docs/providers.md, automatic1111; ✅ ``modules/api/api.py``, ``models.py``).

``POST /sdapi/v1/txt2img`` is synchronous (the server serialises generations behind a queue
lock, so waiting for the lock is part of the one "generation" phase).  The answer is
``{"images": [base64 PNG], "parameters", "info": "<JSON string>"}``; ``info`` names the
checkpoint (``sd_model_name``, ``sd_model_hash``) and the seed used.  A1111 has no request
id, no rate limit and no safety filter of its own.

Authentication is optional (``--api-auth user:password``): set ``options.username`` and put
the password in ``api_key``; without a username no credentials are sent.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, classify_status, loads, object_or_empty
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request
from probes.download import decode_base64, sniff_image

DEFAULT_BASE_URL = "http://127.0.0.1:7860"
MAX_LISTING_BODY = 4 * 1024 * 1024
RANDOM_SEED = -1


class Automatic1111Options(BaseModel):
    """``options:`` of an automatic1111 service; generation settings are sent only when set."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = None  # HTTP Basic user of --api-auth; the password is the service's api_key
    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=1, le=30)
    sampler_name: str | None = None
    checkpoint: str | None = None  # sent as override_settings.sd_model_checkpoint


class Automatic1111Adapter(Adapter):
    provider: ClassVar[str] = "automatic1111"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = Automatic1111Options
    options: Automatic1111Options

    def auth(self) -> httpx.BasicAuth | None:
        if self.options.username is None:
            return None
        if self.service.api_key is None:
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} sets options.username but has no api_key (the --api-auth password)",
            )
        return httpx.BasicAuth(self.options.username, self.service.api_key.get_secret_value())

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def request_body(self, ctx: ProbeContext) -> dict[str, Any]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        body: dict[str, Any] = {
            "prompt": ctx.canary.prompt,
            "negative_prompt": ctx.canary.negative_prompt or "",
            "seed": ctx.seed if ctx.seed is not None else RANDOM_SEED,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }
        if ctx.canary.dimensions is not None:
            body["width"], body["height"] = ctx.canary.dimensions
        body |= self.options.model_dump(include={"steps", "cfg_scale", "sampler_name"}, exclude_none=True)
        if self.options.checkpoint:
            body["override_settings"] = {"sd_model_checkpoint": self.options.checkpoint}
        return body

    def generate(self, ctx: ProbeContext) -> Generation:
        request = Request("POST", f"{self.base_url}/sdapi/v1/txt2img", headers=self.service.headers,
                          json=self.request_body(ctx), auth=self.auth(), what="txt2img response")
        limit = self.service.max_image_bytes * 4 // 3 + 256 * 1024  # base64 plus parameters and info
        reply = self.send(ctx, request, limit=limit, phase="generation")
        payload, response = reply.json(), reply.response
        images = payload.get("images") if isinstance(payload, dict) else None
        if not isinstance(images, list) or not images or not isinstance(images[0], str) or not images[0]:
            raise bad_output("response has no images in 'images'", response)
        # Some builds prefix "data:image/png;base64,"; the API model says plain base64.
        image = decode_base64(images[0].rpartition(",")[2], what="images[0]")
        info = _info(payload.get("info"))
        sniff_image(image)  # a non-image or a truncated one is bad_output
        return Generation(
            image=image,
            http_status=response.status_code,
            request_id=None,
            model_version=_model_version(info) or self.options.checkpoint,
            seed=info.get("seed") if isinstance(info.get("seed"), int) else None,
        )

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        """``GET /sdapi/v1/sd-models``: the server is up, auth works and the checkpoint is installed."""
        request = Request("GET", f"{self.base_url}/sdapi/v1/sd-models", headers=self.service.headers, auth=self.auth(),
                          what="model listing")
        reply = self.send(ctx, request, limit=MAX_LISTING_BODY)
        models, response = reply.json(), reply.response
        if not isinstance(models, list):
            raise bad_output("model listing is not a list", response)
        names = {m.get(key) for m in models if isinstance(m, dict) for key in ("title", "model_name")}
        detail = f"{len(models)} checkpoints installed"
        if self.options.checkpoint and self.options.checkpoint not in names:
            detail = f"checkpoint {self.options.checkpoint!r} is not among the {len(models)} installed"
        return HealthCheck(http_status=response.status_code, detail=detail)


def _info(value: Any) -> dict[str, Any]:
    """``info`` is a JSON string (❓ contents vary by version); anything unparsable is ignored."""
    if isinstance(value, dict):
        return value
    try:
        parsed = loads(value) if isinstance(value, str) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _model_version(info: dict[str, Any]) -> str | None:
    name, digest = info.get("sd_model_name"), info.get("sd_model_hash")
    if isinstance(name, str) and name:
        return f"{name} [{digest}]" if isinstance(digest, str) and digest else name
    return digest if isinstance(digest, str) and digest else None


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify ``{"error", "detail", "body", "errors"}``, FastAPI's ``{"detail"}`` or a proxy's page.

    A1111 has no rate limit of its own, but a proxy in front of it may answer 429.
    """
    body = object_or_empty(raw)
    parts = [body.get("error"), body.get("detail"), body.get("errors")]
    text = "; ".join(json.dumps(p)[:300] if not isinstance(p, str) else p for p in parts if p)
    detail = f"HTTP {response.status_code}: " + (text or body_text(raw))
    outcome, detail = classify_status(response, detail, auth_statuses=(401, 403))
    if outcome is Outcome.AUTH_ERROR and "basic" in response.headers.get("www-authenticate", "").lower():
        detail += " (HTTP Basic auth required: check options.username and api_key)"
    return ProbeFailure(outcome, detail, http_status=response.status_code)
