"""Black Forest Labs FLUX API (docs/providers.md, bfl; ◐ second-hand): submit, poll ``polling_url``, download.

BFL has no cancel call, so a job abandoned at the deadline runs (and is billed) to its end.
Its one non-terminal status ``Pending`` does not say queued from running: ◐ a ``progress``
value (or the flux-2 ``Reasoning``/``Generating`` statuses) is taken to mean running.
``Task not found`` is answered for a job the API does not know (yet): keep polling until
the deadline.  Image URLs are signed and expire after ~10 min: downloaded at once.

The ``polling_url`` may name a regional host of the API (``api.eu.bfl.ai``, ``api.us1.bfl.ai``):
those, and only those, are listed in ``SIBLING_HOSTS`` and get the key while ``base_url`` is one
of them; any other origin is refused by the same-origin rule of ``Adapter.send``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import body_text, object_or_empty, status_failure
from probes.aspect import common_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import download_image
from probes.polling import PhaseClock, poll

DEFAULT_BASE_URL = "https://api.bfl.ai"
DEFAULT_MODEL = "flux-pro-1.1"
MAX_BODY = 1024 * 1024
FIRST_POLL_S = 0.25  # short jobs (flux-schnell class) finish in about a second
RUNNING = frozenset({"Reasoning", "Generating"})
FAILED = frozenset({"Error", "Failed"})
MODERATED = frozenset({"Request Moderated", "Content Moderated"})
NOT_FOUND = "Task not found"
#: BFL's global and regional API hosts (◐ docs: api.bfl.ai, api.eu.bfl.ai, api.us.bfl.ai; older
#: polling URLs name numbered regions): a polling URL on one of them is still BFL's API
SIBLING_HOSTS = frozenset({"api.bfl.ai", "api.eu.bfl.ai", "api.us.bfl.ai", "api.eu1.bfl.ai", "api.eu2.bfl.ai",
                           "api.us1.bfl.ai", "api.us2.bfl.ai"})


class BFLOptions(BaseModel):
    """``options:`` of a bfl service."""

    model_config = ConfigDict(extra="forbid")

    size_input: Literal["width_height", "aspect_ratio"] = "width_height"  # ultra and kontext take aspect_ratio
    safety_tolerance: int = Field(2, ge=0, le=6)  # 0 strictest .. 6 least strict
    output_format: Literal["jpeg", "png"] | None = None
    prompt_upsampling: bool | None = None
    input: dict[str, Any] = {}  # extra request fields; they win over ours


class BFLAdapter(Adapter):
    provider: ClassVar[str] = "bfl"
    key_variable: ClassVar[str] = "BFL_API_KEY"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = BFLOptions
    options: BFLOptions
    sibling_hosts: ClassVar[frozenset[str]] = SIBLING_HOSTS

    @property
    def model(self) -> str:
        return (self.service.model or DEFAULT_MODEL).strip("/")

    def headers(self) -> dict[str, str]:
        return {"x-key": self.api_key()} | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def request_body(self, ctx: ProbeContext) -> tuple[dict[str, Any], SizeCheck]:
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        body: dict[str, Any] = {"prompt": ctx.canary.prompt, "safety_tolerance": self.options.safety_tolerance}
        if ctx.seed is not None:
            body["seed"] = ctx.seed
        size_check = SizeCheck.NONE
        if ctx.canary.dimensions is not None:
            width, height = ctx.canary.dimensions
            if self.options.size_input == "width_height":
                body |= {"width": width, "height": height}
                size_check = SizeCheck.EXACT
            else:
                body["aspect_ratio"] = common_ratio(width, height)
                size_check = SizeCheck.ASPECT
        body |= self.options.model_dump(include={"output_format", "prompt_upsampling"}, exclude_none=True)
        return body | self.options.input, size_check

    def generate(self, ctx: ProbeContext) -> Generation:
        body, size_check = self.request_body(ctx)
        submit = Request("POST", f"{self.base_url}/v1/{self.model}", headers=self.headers(), json=body, what="submit answer")
        reply = self.send(ctx, submit, limit=MAX_BODY, phase="submit")
        task = reply.object()
        task_id = task.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ProbeFailure(Outcome.BAD_OUTPUT, "submit answer has no task 'id'", http_status=reply.status_code)
        ctx.request_id = task_id
        polling_url = task.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:  # an older API answered only the id
            polling_url = f"{self.base_url}/v1/get_result?id={task_id}"
        poll_request = Request("GET", polling_url, headers=submit.headers, what="task state")
        clock = PhaseClock(ctx, "queue")

        def step() -> dict[str, Any] | None:
            answer = self._poll_once(ctx, poll_request)
            status = answer.get("status") if answer else None
            if answer is None or status is None or status == NOT_FOUND:
                clock.seen()
                return None
            if status == "Ready" or status in FAILED | MODERATED:
                clock.finished()  # a finished task has no progress: it is not back in the queue
                return answer
            clock.seen("generation" if status in RUNNING or answer.get("progress") is not None else "queue")
            return None

        final = poll(ctx, step, what=f"BFL task {task_id}", on_deadline=clock.seen,
                     first_delay=FIRST_POLL_S)
        status = final["status"]
        if status in MODERATED:
            raise ProbeFailure(Outcome.CONTENT_FILTERED, f"task {task_id}: {status}{_details(final)}")
        if status in FAILED:
            raise ProbeFailure(Outcome.SERVER_ERROR, f"task {task_id}: {status}{_details(final)}")
        result = final.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"task {task_id} is Ready without result.sample")
        image, _ = download_image(ctx, sample)
        seed = result.get("seed") if isinstance(result, dict) else None
        return Generation(
            image=image,
            http_status=ctx.http_status,
            request_id=task_id,
            model_version=self.model,  # BFL reports no version; the endpoint names the model
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else ctx.seed,
            size_check=size_check,
        )

    def _poll_once(self, ctx: ProbeContext, request: Request) -> dict[str, Any] | None:
        """The task's state, or None for a 404 (unknown to the API: keep polling to the deadline)."""
        reply = self.send(ctx, request, keep=(404,), limit=MAX_BODY)
        return None if reply.status_code == 404 else reply.object()

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        reply = self.send(ctx, Request("GET", f"{self.base_url}/v1/credits", headers=self.headers(), what="credits"))
        credits, status = reply.object().get("credits"), reply.status_code
        if not isinstance(credits, (int, float)) or isinstance(credits, bool):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "credits answer has no number 'credits'", http_status=status)
        if credits <= 0:  # every generation would fail with 402: an operator problem
            raise ProbeFailure(Outcome.AUTH_ERROR, f"no credits left ({credits:g})", http_status=status)
        return HealthCheck(http_status=status, request_id=ctx.request_id, detail=f"{credits:g} credits left")


def _details(answer: dict[str, Any]) -> str:
    details = answer.get("details")
    return f" ({json.dumps(details)[:500]})" if details else ""


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify ``{"detail": str | [{"loc", "msg", "type"}]}`` (tolerantly); 402 is insufficient credits."""
    detail = object_or_empty(raw).get("detail")
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}" if isinstance(item, dict) else str(item)
            for item in detail
        )
    return status_failure(response, f"HTTP {response.status_code}: {detail or body_text(raw)}")
