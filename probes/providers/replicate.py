"""Replicate predictions (PROVIDERS.md §3): create, hold with ``Prefer: wait``, then poll.

A prediction goes ``starting`` (queue phase) -> ``processing`` (generation phase) ->
``succeeded|failed|canceled``.  The create POST is never retried: a second POST is a
second paid prediction.  At the deadline the prediction is cancelled so an abandoned
canary stops costing money.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import MAX_ERROR_BODY, body_text, json_object, object_or_empty, read_head, status_failure
from probes.aspect import common_ratio as aspect_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, SizeCheck
from probes.download import download_image, read_limited
from probes.polling import PhaseClock, cancel_timeout, on_site, poll

DEFAULT_BASE_URL = "https://api.replicate.com"
MAX_PREDICTION_BODY = 4 * 1024 * 1024  # logs can be long; data: URI outputs come on top (see _body_limit)
MAX_WAIT_S = 60  # the API holds a create request at most this long
WAIT_MARGIN_S = 0.5  # leave time after the hold to poll once and cancel before the deadline
FIRST_POLL_S = 0.25  # fast models (flux-schnell) finish in about a second
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# ◐ Replicate has no structured safety code: models fail with messages like "NSFW content detected"
# or "E005: The input or output was flagged as sensitive".
SAFETY_ERROR = re.compile(r"nsfw|sensitive|safety|flagged|moderat|E005|content polic", re.IGNORECASE)


class ReplicateOptions(BaseModel):
    """``options:`` of a replicate service."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = None  # create by version id (POST /v1/predictions) instead of by model
    size_input: Literal["aspect_ratio", "width_height"] = "aspect_ratio"  # how the model takes a size
    wait: int = Field(MAX_WAIT_S, ge=0, le=MAX_WAIT_S)  # Prefer: wait=N; 0 polls from the start
    input: dict[str, Any] = {}  # extra model inputs (e.g. num_inference_steps); they win over ours


class ReplicateAdapter(Adapter):
    provider: ClassVar[str] = "replicate"
    key_variable: ClassVar[str] = "REPLICATE_API_TOKEN"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = ReplicateOptions
    options: ReplicateOptions

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"} | self.service.headers

    def _body_limit(self) -> int:
        """A prediction may carry its image as a base64 data: URI (~4/3 of the image)."""
        return self.service.max_image_bytes * 4 // 3 + MAX_PREDICTION_BODY

    def create_request(self, ctx: ProbeContext) -> tuple[str, dict[str, Any], SizeCheck]:
        """The create URL, its body and how scoring should check the size."""
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        inputs: dict[str, Any] = {"prompt": ctx.canary.prompt}
        if ctx.canary.negative_prompt:
            inputs["negative_prompt"] = ctx.canary.negative_prompt
        if ctx.seed is not None:
            inputs["seed"] = ctx.seed
        size_check = SizeCheck.NONE
        if ctx.canary.dimensions is not None:
            width, height = ctx.canary.dimensions
            if self.options.size_input == "width_height":
                inputs |= {"width": width, "height": height}
                size_check = SizeCheck.EXACT
            else:
                inputs["aspect_ratio"] = aspect_ratio(width, height)
                size_check = SizeCheck.ASPECT
        inputs |= self.options.input
        if self.options.version:
            return f"{self.base_url}/v1/predictions", {"version": self.options.version, "input": inputs}, size_check
        if not self.service.model or not re.fullmatch(r"[\w.-]+/[\w.-]+", self.service.model):
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} needs model: owner/name (or options.version), got {self.service.model!r}",
            )
        return f"{self.base_url}/v1/models/{self.service.model}/predictions", {"input": inputs}, size_check

    def generate(self, ctx: ProbeContext) -> Generation:
        url, body, size_check = self.create_request(ctx)
        headers = self.headers()
        wait = min(self.options.wait, math.floor(ctx.check_deadline("submit") - WAIT_MARGIN_S))
        began = time.monotonic()
        with ctx.phase("submit"):
            with ctx.client.stream(
                "POST", url, json=body, headers=headers | ({"Prefer": f"wait={wait}"} if wait >= 1 else {}),
                timeout=ctx.timeout(),
            ) as response:
                ctx.note_response(response)
                if response.status_code not in (200, 201):
                    raise _failure(response, read_head(ctx, response))
                prediction = _prediction(read_limited(ctx, response, self._body_limit(), what="prediction"), response)
        ctx.request_id = prediction["id"]
        if response.headers.get("preference-applied", "").startswith("wait"):
            _credit_hold(ctx, prediction, time.monotonic() - began)
        prediction = self._wait_until_terminal(ctx, prediction, headers)
        image, content_type = download_image(ctx, _first_output(prediction))
        model, version = prediction.get("model") or self.service.model, prediction.get("version")
        return Generation(
            image=image,
            content_type=content_type,
            http_status=ctx.http_status,
            request_id=prediction["id"],
            model_version=f"{model}:{version}" if model and isinstance(version, str) and version else model,
            seed=ctx.seed,
            size_check=size_check,
        )

    def _wait_until_terminal(self, ctx: ProbeContext, prediction: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """Poll ``urls.get`` until the prediction ends; cancel it at the deadline."""
        urls = prediction.get("urls") if isinstance(prediction.get("urls"), dict) else {}
        own = f"{self.base_url}/v1/predictions/{prediction['id']}"
        get_url = on_site(urls.get("get") or own, self.base_url)
        cancel_url = on_site(urls.get("cancel") or f"{own}/cancel", self.base_url)
        clock = PhaseClock(ctx, _phase_of(prediction["status"]))

        def step() -> dict[str, Any] | None:
            nonlocal prediction
            if prediction["status"] not in TERMINAL:
                answer = self._get(ctx, get_url, headers)
                clock.seen(_phase_of(answer["status"]) if answer else None)
                prediction = answer or prediction
            return prediction if prediction["status"] in TERMINAL else None

        def cancel() -> None:
            clock.seen()
            ctx.client.post(cancel_url, headers=headers, timeout=cancel_timeout())

        final = poll(ctx, step, what=f"prediction {prediction['id']}", on_deadline=cancel, first_delay=FIRST_POLL_S)
        if final["status"] == "succeeded":
            return final
        error = str(final.get("error") or "(no error message)")[:500]
        if final["status"] == "canceled":
            raise ProbeFailure(Outcome.SERVER_ERROR, f"prediction {final['id']} was canceled: {error}")
        outcome = Outcome.CONTENT_FILTERED if SAFETY_ERROR.search(error) else Outcome.SERVER_ERROR
        raise ProbeFailure(outcome, f"prediction {final['id']} failed: {error}")

    def _get(self, ctx: ProbeContext, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
        """The prediction, or None while Replicate does not know it (404: keep polling to the deadline)."""
        with ctx.client.stream("GET", url, headers=headers, timeout=ctx.timeout()) as response:
            ctx.note_response(response)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _failure(response, read_head(ctx, response))
            return _prediction(read_limited(ctx, response, self._body_limit(), what="prediction"), response)

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        headers = self.headers()
        with ctx.client.stream("GET", f"{self.base_url}/v1/account", headers=headers, timeout=ctx.timeout()) as response:
            ctx.note_response(response)
            if response.status_code != 200:
                raise _failure(response, read_head(ctx, response))
            account = json_object(read_limited(ctx, response, MAX_ERROR_BODY, what="account"), response)
        if not account.get("username"):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "account answer has no 'username'", http_status=response.status_code)
        return HealthCheck(http_status=response.status_code)


def _phase_of(status: str) -> str:
    return "queue" if status == "starting" else "generation"


def _credit_hold(ctx: ProbeContext, prediction: dict[str, Any], spent_s: float) -> None:
    """Move the server-side part of a ``Prefer: wait`` hold out of ``submit``.

    Replicate's own timestamps say how long the prediction queued (created -> started) and
    ran (started -> completed, or until the answer if still running) while the request was held.
    """
    created, started, completed = (_timestamp(prediction.get(k)) for k in ("created_at", "started_at", "completed_at"))
    if created is None:
        return
    queue = (started - created) if started else spent_s
    queue = min(max(queue, 0.0), spent_s)
    run = (completed - started) if started and completed else (spent_s - queue if started else 0.0)
    run = min(max(run, 0.0), spent_s - queue)
    ctx.phases["submit"] = max((ctx.phases["submit"] or 0.0) - (queue + run) * 1000.0, 0.0)
    for name, seconds in (("queue", queue), ("generation", run)):
        if seconds > 0:
            ctx.add_phase(name, seconds * 1000.0)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _first_output(prediction: dict[str, Any]) -> str:
    """The first image of the output: a list of URLs, a single URL, or data: URIs."""
    output = prediction.get("output")
    items = output if isinstance(output, list) else [output]
    for item in items:
        if isinstance(item, str) and item.startswith(("http://", "https://", "data:")):
            return item
    raise ProbeFailure(
        Outcome.BAD_OUTPUT,
        f"prediction {prediction['id']} succeeded without an image URL in its output "
        f"({type(output).__name__}{f' of {len(output)}' if isinstance(output, list) else ''})",
    )


def _prediction(raw: bytes, response: httpx.Response) -> dict[str, Any]:
    prediction = json_object(raw, response)
    if not isinstance(prediction.get("id"), str) or not isinstance(prediction.get("status"), str):
        raise ProbeFailure(Outcome.BAD_OUTPUT, "prediction has no 'id' or 'status'", http_status=response.status_code)
    return prediction


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify a problem-details error ``{"title", "detail", "status"}`` (tolerantly); 402 is out of credit."""
    status = response.status_code
    problem = object_or_empty(raw)
    title, message = problem.get("title"), problem.get("detail")
    message = message or body_text(raw)
    detail = f"HTTP {status}" + (f" {title}" if title and title != message else "") + f": {message}"
    return status_failure(response, detail, retry_after=response.headers.get("retry-after") or problem.get("retry_after"))
