"""Black Forest Labs FLUX API (PROVIDERS.md §7, ◐ second-hand): submit, poll ``polling_url``, download.

BFL has no cancel call, so a job abandoned at the deadline runs (and is billed) to its end.
Its one non-terminal status ``Pending`` does not say queued from running: ◐ a ``progress``
value (or the flux-2 ``Reasoning``/``Generating`` statuses) is taken to mean running.
``Task not found`` is answered for a job the API does not know (yet): keep polling until
the deadline.  Image URLs are signed and expire after ~10 min: downloaded at once.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitor.enums import Outcome
from probes.answers import MAX_ERROR_BODY, body_text, json_object, object_or_empty, read_head, status_failure
from probes.aspect import common_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, SizeCheck
from probes.download import download_image, read_limited
from probes.polling import PhaseClock, poll, same_origin

DEFAULT_BASE_URL = "https://api.bfl.ai"
DEFAULT_MODEL = "flux-pro-1.1"
MAX_BODY = 1024 * 1024
FIRST_POLL_S = 0.25  # short jobs (flux-schnell class) finish in about a second
RUNNING = frozenset({"Reasoning", "Generating"})
FAILED = frozenset({"Error", "Failed"})
MODERATED = frozenset({"Request Moderated", "Content Moderated"})
NOT_FOUND = "Task not found"


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

    @property
    def model(self) -> str:
        return (self.service.model or DEFAULT_MODEL).strip("/")

    def headers(self) -> dict[str, str]:
        return {"x-key": self.api_key()} | self.service.headers

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
        headers = self.headers()
        with ctx.phase("submit"):
            with ctx.client.stream(
                "POST", f"{self.base_url}/v1/{self.model}", json=body, headers=headers, timeout=ctx.timeout()
            ) as response:
                ctx.note_response(response)
                if response.status_code != 200:
                    raise _failure(response, read_head(ctx, response))
                task = json_object(read_limited(ctx, response, MAX_BODY, what="submit answer"), response)
        task_id = task.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ProbeFailure(Outcome.BAD_OUTPUT, "submit answer has no task 'id'", http_status=response.status_code)
        ctx.request_id = task_id
        polling_url = task.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:  # an older API answered only the id
            polling_url = f"{self.base_url}/v1/get_result?id={task_id}"
        _check_site(polling_url, self.base_url)
        clock = PhaseClock(ctx, "queue")

        def step() -> dict[str, Any] | None:
            answer = self._poll_once(ctx, polling_url, headers)
            status = answer.get("status") if answer else None
            if status is None or status == NOT_FOUND:
                clock.seen()
                return None
            clock.seen("generation" if status in RUNNING or answer.get("progress") is not None else "queue")
            return answer if status == "Ready" or status in FAILED | MODERATED else None

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
        image, content_type = download_image(ctx, sample)
        seed = result.get("seed") if isinstance(result, dict) else None
        return Generation(
            image=image,
            content_type=content_type,
            http_status=ctx.http_status,
            request_id=task_id,
            model_version=self.model,  # BFL reports no version; the endpoint names the model
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else ctx.seed,
            size_check=size_check,
        )

    def _poll_once(self, ctx: ProbeContext, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
        """The task's state, or None for a 404 (unknown to the API: keep polling to the deadline)."""
        with ctx.client.stream("GET", url, headers=headers, timeout=ctx.timeout()) as response:
            ctx.note_response(response)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _failure(response, read_head(ctx, response))
            return json_object(read_limited(ctx, response, MAX_BODY, what="task state"), response)

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        url = f"{self.base_url}/v1/credits"
        with ctx.client.stream("GET", url, headers=self.headers(), timeout=ctx.timeout()) as response:
            ctx.note_response(response)
            if response.status_code != 200:
                raise _failure(response, read_head(ctx, response))
            answer = json_object(read_limited(ctx, response, MAX_ERROR_BODY, what="credits"), response)
        credits, status = answer.get("credits"), response.status_code
        if not isinstance(credits, (int, float)) or isinstance(credits, bool):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "credits answer has no number 'credits'", http_status=status)
        if credits <= 0:  # every generation would fail with 402: an operator problem
            raise ProbeFailure(Outcome.AUTH_ERROR, f"no credits left ({credits:g})", http_status=status)
        return HealthCheck(http_status=status, request_id=ctx.request_id, detail=f"{credits:g} credits left")


def _details(answer: dict[str, Any]) -> str:
    details = answer.get("details")
    return f" ({json.dumps(details)[:500]})" if details else ""


def _check_site(url: str, base_url: str) -> None:
    """The polling URL gets the key: allow only the API's host or its regional siblings (``api.us1.bfl.ai``)."""
    if same_origin(url, base_url):
        return
    target, base = httpx.URL(url), httpx.URL(base_url)
    domain = ".".join(base.host.split(".")[-2:])
    if target.scheme == "https" and base.host.count(".") >= 1 and target.host.endswith("." + domain):
        return
    raise ProbeFailure(Outcome.BAD_OUTPUT, f"refusing to poll {target.host!r}: not on the API's domain {domain!r}")


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify ``{"detail": str | [{"loc", "msg", "type"}]}`` (tolerantly); 402 is insufficient credits."""
    detail = object_or_empty(raw).get("detail")
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}" if isinstance(item, dict) else str(item)
            for item in detail
        )
    return status_failure(response, f"HTTP {response.status_code}: {detail or body_text(raw)}")
