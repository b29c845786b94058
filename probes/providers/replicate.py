"""Replicate predictions (docs/providers.md, replicate): create, hold with ``Prefer: wait``, then poll.

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
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import body_text, json_object, object_at, object_or_empty, status_failure
from probes.aspect import common_ratio as aspect_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import download_image
from probes.http import ANY_STATUS
from probes.polling import PhaseClock, cancel_timeout, poll

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

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def create_request(self, ctx: ProbeContext) -> tuple[Request, SizeCheck]:
        """The create request and how scoring should check the size."""
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
            body = {"version": self.options.version, "input": inputs}
            return self._request("POST", f"{self.base_url}/v1/predictions", json=body), size_check
        if not self.service.model or not re.fullmatch(r"[\w.-]+/[\w.-]+", self.service.model):
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} needs model: owner/name (or options.version), got {self.service.model!r}",
            )
        url = f"{self.base_url}/v1/models/{self.service.model}/predictions"
        return self._request("POST", url, json={"input": inputs}), size_check

    def _request(self, method: str, url: str, **fields: Any) -> Request:
        return Request(method, url, headers=self.headers(), what="prediction", **fields)

    def generate(self, ctx: ProbeContext) -> Generation:
        request, size_check = self.create_request(ctx)
        wait = min(self.options.wait, math.floor(ctx.check_deadline("submit") - WAIT_MARGIN_S))
        if wait >= 1:
            request = request.but(headers={**request.headers, "Prefer": f"wait={wait}"})
        began = time.monotonic()
        reply = self.send(ctx, request, ok=(200, 201), limit=self._body_limit(), phase="submit")
        prediction = _prediction(reply.body, reply.response)
        ctx.request_id = prediction["id"]
        if reply.headers.get("preference-applied", "").startswith("wait"):
            _credit_hold(ctx, prediction, time.monotonic() - began)
        prediction = self._wait_until_terminal(ctx, prediction)
        image, _ = download_image(ctx, _first_output(prediction))
        model, version = prediction.get("model") or self.service.model, prediction.get("version")
        return Generation(
            image=image,
            http_status=ctx.http_status,
            request_id=prediction["id"],
            model_version=f"{model}:{version}" if model and isinstance(version, str) and version else model,
            seed=ctx.seed,
            size_check=size_check,
        )

    def _wait_until_terminal(self, ctx: ProbeContext, prediction: dict[str, Any]) -> dict[str, Any]:
        """Poll ``urls.get`` until the prediction ends; cancel it at the deadline."""
        urls = object_at(prediction, "urls")
        own = f"{self.base_url}/v1/predictions/{quote(prediction['id'], safe='')}"
        get_url, cancel_url = str(urls.get("get") or own), str(urls.get("cancel") or f"{own}/cancel")
        self.check_destinations(ctx, self._request("GET", get_url), self._request("POST", cancel_url))
        clock = PhaseClock(ctx, _phase_of(prediction["status"]))

        def step() -> dict[str, Any] | None:
            nonlocal prediction
            if prediction["status"] not in TERMINAL:
                answer = self._get(ctx, get_url)
                clock.seen(_phase_of(answer["status"]) if answer else None)
                prediction = answer or prediction
            return prediction if prediction["status"] in TERMINAL else None

        def cancel() -> None:
            clock.seen()
            self.send(ctx, self._request("POST", cancel_url, timeout=cancel_timeout()), keep=ANY_STATUS, record=False)

        final = poll(ctx, step, what=f"prediction {prediction['id']}", on_deadline=cancel, first_delay=FIRST_POLL_S)
        if final["status"] == "succeeded":
            return final
        error = str(final.get("error") or "(no error message)")[:500]
        if final["status"] == "canceled":
            raise ProbeFailure(Outcome.SERVER_ERROR, f"prediction {final['id']} was canceled: {error}")
        outcome = Outcome.CONTENT_FILTERED if SAFETY_ERROR.search(error) else Outcome.SERVER_ERROR
        raise ProbeFailure(outcome, f"prediction {final['id']} failed: {error}")

    def _get(self, ctx: ProbeContext, url: str) -> dict[str, Any] | None:
        """The prediction, or None while Replicate does not know it (404: keep polling to the deadline)."""
        reply = self.send(ctx, self._request("GET", url), keep=(404,), limit=self._body_limit())
        return None if reply.status_code == 404 else _prediction(reply.body, reply.response)

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        reply = self.send(ctx, Request("GET", f"{self.base_url}/v1/account", headers=self.headers(), what="account"))
        if not reply.object().get("username"):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "account answer has no 'username'", http_status=reply.status_code)
        return HealthCheck(http_status=reply.status_code)


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
