"""Midjourney through novicezk/midjourney-proxy (docs/providers.md, midjourney_proxy; ✅ proxy source).

``POST {base}/submit/imagine`` always answers HTTP 200 with ``{"code", "description", "result",
"properties"}`` (descriptions in Chinese, kept in error details); then ``GET {base}/task/{id}/fetch``
until ``SUCCESS`` or ``FAILURE`` (an unknown id is an empty body: polled until the deadline).
The proxy has no cancel API.  ``mj-api-secret`` carries ``api_key`` when one is set.

Midjourney has no seed (``--seed`` is not bit-exact), so none is drawn.  The canary's size is
appended as ``--ar W:H`` (and ``negative_prompt`` as ``--no ...``); the result is the 2x2 grid of
four images, whose ratio is that of one image, so scoring checks the ratio only
(``SizeCheck.ASPECT``, ❓ Midjourney rounds sizes to a few %).  Without an ``--ar`` of ours
(size ``auto``, ``aspect_ratio: false``, or an ``--ar`` already in the prompt) the size is not
checked.  The reported model version is the ``--v``/``--niji`` flag of the final prompt.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from monitor.enums import Outcome
from probes.answers import body_text, loads, object_at, status_failure
from probes.aspect import reduced_ratio
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, SizeCheck
from probes.download import download_image
from probes.polling import PhaseClock, poll

DEFAULT_BASE_URL = "http://127.0.0.1:8080/mj"
MAX_BODY = 1024 * 1024
ACCEPTED = {1: "submitted", 21: "already exists", 22: "queued"}
SUBMIT_FAILURES = {
    23: Outcome.RATE_LIMITED,      # queue full
    24: Outcome.CONTENT_FILTERED,  # banned prompt
    3: Outcome.SERVER_ERROR,       # no Discord account available
    4: Outcome.CLIENT_ERROR,       # validation error
    9: Outcome.SERVER_ERROR,       # system failure
}
QUEUED_STATES = {"NOT_START", "SUBMITTED"}
# failReason wording (❓: Discord messages relayed by the proxy, not an API contract)
MODERATION_WORDS = ("banned", "moderat", "image filter", "community standards", "blocked", "敏感")
CREDIT_WORDS = ("run out of", "fast hours", "subscription", "credits exhausted", "insufficient credit")
PARAMETER_WORDS = ("invalid parameter", "unrecognized parameter")
VERSION_FLAG = re.compile(r"--(v|version|niji)\s+([\w.]+)")


class MidjourneyProxyOptions(BaseModel):
    """``options:`` of a midjourney_proxy service."""

    model_config = ConfigDict(extra="forbid")

    #: append ``--ar W:H`` from the canary's size
    aspect_ratio: bool = True
    #: Midjourney parameters appended to every canary prompt, e.g. "--v 7 --fast"
    parameters: str = ""
    #: newer proxy versions pick the bot: MID_JOURNEY or NIJI_JOURNEY
    bot_type: Literal["MID_JOURNEY", "NIJI_JOURNEY"] | None = None


class MidjourneyProxyAdapter(Adapter):
    provider: ClassVar[str] = "midjourney_proxy"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    supports_seed: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel]] = MidjourneyProxyOptions
    options: MidjourneyProxyOptions

    def headers(self) -> dict[str, str]:
        secret = {"mj-api-secret": self.service.api_key.get_secret_value()} if self.service.api_key else {}
        return secret | self.service.headers

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _http_failure(response, raw)

    def prompt(self, ctx: ProbeContext) -> tuple[str, SizeCheck]:
        """The imagine prompt and how scoring should check the grid's size."""
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        text = ctx.canary.prompt.strip()
        check = SizeCheck.NONE
        dimensions = ctx.canary.dimensions
        if self.options.aspect_ratio and dimensions and not re.search(r"--(ar|aspect)\b", text + self.options.parameters):
            text += f" --ar {reduced_ratio(*dimensions)}"
            check = SizeCheck.ASPECT
        if ctx.canary.negative_prompt:
            text += f" --no {ctx.canary.negative_prompt}"
        if self.options.parameters:
            text += f" {self.options.parameters.strip()}"
        return text, check

    def generate(self, ctx: ProbeContext) -> Generation:
        prompt, size_check = self.prompt(ctx)
        body: dict[str, Any] = {"prompt": prompt}
        if self.options.bot_type:
            body["botType"] = self.options.bot_type
        answer = self._call(ctx, "POST", "/submit/imagine", json=body, phase="submit")
        task_id = _submitted_task(answer)
        ctx.request_id = task_id
        task = self._wait(ctx, task_id)
        if task.get("status") == "FAILURE":
            raise _task_failure(task)
        image_url = task.get("imageUrl")
        if not isinstance(image_url, str) or not image_url:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"task {task_id} succeeded without an imageUrl", request_id=task_id)
        image, _ = download_image(ctx, image_url)
        final_prompt = " ".join(str(v) for v in ((task.get("properties") or {}).get("finalPrompt"), task.get("promptEn"), prompt) if v)
        version = VERSION_FLAG.search(final_prompt)
        return Generation(
            image=image, http_status=200, request_id=task_id,
            model_version=f"--{version.group(1).replace('version', 'v')} {version.group(2)}" if version else self.service.model,
            size_check=size_check,
        )

    def _wait(self, ctx: ProbeContext, task_id: str) -> dict[str, Any]:
        clock = PhaseClock(ctx, "queue")

        def step() -> dict[str, Any] | None:
            task = self._call(ctx, "GET", f"/task/{quote(task_id, safe='')}/fetch", empty_ok=True)
            status = task.get("status") if task else None
            if status in ("SUCCESS", "FAILURE"):
                clock.finished()
                return task
            # empty body = unknown id (not yet stored, or lost): it keeps its last state until the deadline
            clock.seen("queue" if status in QUEUED_STATES else "generation" if status else None)
            return None

        try:
            return poll(ctx, step, what="Midjourney task")
        finally:
            clock.seen()

    def _call(
        self, ctx: ProbeContext, method: str, path: str, *, json: Any = None, empty_ok: bool = False, phase: str | None = None,
    ) -> dict[str, Any]:
        """One proxy request: the JSON object it answered ({} for an empty body when ``empty_ok``)."""
        request = Request(method, f"{self.base_url}{path}", headers=self.headers(), json=json, what=f"{method} {path}")
        reply = self.send(ctx, request, limit=MAX_BODY, phase=phase)
        return {} if empty_ok and not reply.body.strip() else reply.object()

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        request = Request("GET", f"{self.base_url}/account/list", headers=self.headers(), what="account list")
        raw = self.send(ctx, request, limit=MAX_BODY).body
        try:
            accounts = _loads(raw)
        except ValueError as exc:
            raise ProbeFailure(Outcome.BAD_OUTPUT, f"malformed JSON in the account list: {exc}", http_status=200) from None
        if not isinstance(accounts, list):
            raise ProbeFailure(Outcome.BAD_OUTPUT, "account list is not a JSON list", http_status=200)
        enabled = [a for a in accounts if isinstance(a, dict) and a.get("enable", True) is not False]
        if not enabled:
            raise ProbeFailure(Outcome.SERVER_ERROR, f"the proxy has no enabled Discord account ({len(accounts)} listed)",
                               http_status=200)
        return HealthCheck(http_status=200)


def _submitted_task(answer: dict[str, Any]) -> str:
    """The task id of an accepted submission, or the classified refusal."""
    code, description = answer.get("code"), str(answer.get("description") or "")
    properties = object_at(answer, "properties")
    result = answer.get("result")
    if code in ACCEPTED and isinstance(result, (str, int)) and str(result):
        return str(result)
    if code in ACCEPTED:
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"submit code {code} ({ACCEPTED[code]}) without a task id", http_status=200)
    detail = f"submit code {code}: {description or '(no description)'}"
    if properties.get("bannedWord"):
        detail += f" (bannedWord: {properties['bannedWord']})"
    outcome = SUBMIT_FAILURES.get(code, Outcome.SERVER_ERROR) if isinstance(code, int) else Outcome.BAD_OUTPUT
    raise ProbeFailure(outcome, detail, http_status=200)


def _task_failure(task: dict[str, Any]) -> ProbeFailure:
    reason = str(task.get("failReason") or "(no failReason)")
    lowered = reason.lower()
    if any(word in lowered for word in MODERATION_WORDS):
        outcome = Outcome.CONTENT_FILTERED
    elif any(word in lowered for word in CREDIT_WORDS):
        outcome = Outcome.AUTH_ERROR  # the Midjourney subscription behind the proxy: the operator's to fix
    elif any(word in lowered for word in PARAMETER_WORDS):
        outcome = Outcome.CLIENT_ERROR
    else:
        outcome = Outcome.SERVER_ERROR
    return ProbeFailure(outcome, f"task {task.get('id')} FAILURE: {reason}", http_status=200, request_id=str(task.get("id")))


def _loads(raw: bytes) -> Any:
    return loads(raw)


def _http_failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Non-200: the secret check (401, empty body), Spring's error JSON, or something in front of the proxy."""
    status = response.status_code
    try:
        parsed = _loads(raw)
        said = f"{parsed.get('error')}: {parsed.get('message') or ''}".strip(": ") if isinstance(parsed, dict) else str(parsed)
    except ValueError:
        said = body_text(raw, empty="")
    detail = f"HTTP {status}: {said or ('wrong or missing mj-api-secret' if status == 401 else '(empty body)')}"
    return status_failure(response, detail, auth_statuses=(401, 403))
