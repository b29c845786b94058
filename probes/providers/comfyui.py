"""ComfyUI (docs/providers.md, comfyui; ✅): queue an API-format workflow, poll its history, fetch the image.

The canary is injected into named nodes of a workflow: ``options.workflow`` is a file saved
with ComfyUI's "Save (API Format)"; a relative path is resolved against the monitor's
current directory (the adapter never sees the config file's path, so prefer absolute
paths).  Without it the bundled ``comfyui_workflows/default_api.json`` is used: ComfyUI's
default text-to-image graph, whose node ids are the option defaults below
(3 KSampler ``seed``, 4 CheckpointLoaderSimple ``ckpt_name`` = the service's ``model``,
5 EmptyLatentImage ``width``/``height``, 6/7 CLIPTextEncode ``text`` positive/negative,
9 SaveImage).  A ``*_node`` option set to null leaves that part of the graph alone.

The cache.  ComfyUI caches every node's output, keyed on the node's inputs and its ancestors'
keys, and does not run a node whose key it has seen: with a fixed seed every run after the
first would be answered from the cache (2 ms, the same file) and measure nothing.  So each run
writes a unique value into an input no node declares (``genstatus_run``; ComfyUI passes a node
only the inputs it declares, but keys its cache on all of them) of the seed node (else the
prompt node): that node and everything after it run again, exactly the nodes a new seed
would run, while the loaders stay cached as they are for any user of the server.  The
picture does not change, so a fixed seed still means "the same picture" and drift can be
judged.  Putting the value at the root of the graph instead would reload the checkpoint on
every run and measure the disk, not the service.  ``defeat_cache: false`` turns this off.
The history's ``execution_cached`` message says which nodes were not run: a run in which
every node but the output nodes came from the cache generated nothing, and is a
``probe_error`` naming the cached nodes (not a sample: uptime and baselines leave it out).
A canary without a seed gets a fresh random one every run (reported as the result's seed).

Phases: submit = ``POST /prompt``; queue = while ``GET /queue`` lists the prompt as pending;
generation = until ``GET /history/{id}`` has the entry (``{}`` meanwhile, and for an unknown
id: the deadline tells them apart); download = ``GET /view`` through ``download_image``, so a
ComfyUI on a private address needs ``allow_private_network: true``.  A state change between
two looks splits that gap (``PhaseClock``); when the entry carries ComfyUI's own
``execution_start``/``execution_success`` timestamps, their difference is the generation
and the rest of the wait is queue (including the time until our look that found it done).

At the deadline a still-pending prompt is deleted from the queue; a running one is stopped with
``POST /interrupt {"prompt_id": ...}`` when ``/system_stats`` reports a release that honours
the id (``TARGETED_INTERRUPT_SINCE``).  Older releases ignore the body and stop whatever is
running, which may be someone else's prompt by then: there ours is left to finish, and a bare
interrupt is never sent.  ComfyUI has no auth of its own: credentials for a proxy in front go
in ``service.headers``.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from monitor.enums import Outcome
from probes.answers import bad_output, body_text, object_at, object_or_empty, status_failure
from probes.base import Adapter, Generation, HealthCheck, ProbeContext, ProbeFailure, Request, random_seed
from probes.download import download_image
from probes.http import ANY_STATUS, Reply
from probes.polling import CANCEL_TIMEOUT_S, PhaseClock, cancel_timeout, poll

DEFAULT_BASE_URL = "http://127.0.0.1:8188"
DEFAULT_WORKFLOW = Path(__file__).parent / "comfyui_workflows" / "default_api.json"
MAX_JSON_BODY = 16 * 1024 * 1024  # /queue and /history repeat whole workflows
#: the input, declared by no node, whose unique value per run defeats ComfyUI's cache
RUN_INPUT = "genstatus_run"
#: the first release confirmed to stop only the named prompt on ``POST /interrupt`` (ComfyUI PR #9607)
TARGETED_INTERRUPT_SINCE = (0, 3, 64)
#: a ``model_validate`` context that skips reading the workflow file (see ``ComfyUIAdapter.__init__``)
DEFER_FILES = {"defer_files": True}


class ComfyUIOptions(BaseModel):
    """``options:`` of a comfyui service: the workflow file and where the canary goes in it."""

    model_config = ConfigDict(extra="forbid")

    workflow: str | None = None
    prompt_node: str | None = "6"
    prompt_input: str = "text"
    negative_node: str | None = "7"
    negative_input: str = "text"
    seed_node: str | None = "3"
    seed_input: str = "seed"
    size_node: str | None = "5"
    width_input: str = "width"
    height_input: str = "height"
    model_node: str | None = "4"
    model_input: str = "ckpt_name"
    #: the node whose images are the result; default: the first output node with images
    output_node: str | None = None
    #: write a unique ``genstatus_run`` input into the seed (else prompt) node so ComfyUI runs it again
    defeat_cache: bool = True

    @model_validator(mode="after")
    def _workflow_fits(self, info: ValidationInfo) -> ComfyUIOptions:
        if not (info.context or {}).get("defer_files"):
            self.load_workflow()  # config validation names the file and the node that is missing
        return self

    def targets(self) -> list[tuple[str, str, str]]:
        """(option, node id, input name) of every node the canary is written into."""
        pairs = [("prompt_node", self.prompt_node, self.prompt_input), ("negative_node", self.negative_node, self.negative_input),
                 ("seed_node", self.seed_node, self.seed_input), ("size_node", self.size_node, self.width_input),
                 ("size_node", self.size_node, self.height_input), ("model_node", self.model_node, self.model_input)]
        return [(option, node, name) for option, node, name in pairs if node is not None]

    def load_workflow(self) -> dict[str, Any]:
        """The API-format graph, checked against the node options; ``ValueError`` names the file."""
        path = Path(self.workflow).expanduser() if self.workflow else DEFAULT_WORKFLOW
        try:
            graph = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read workflow {str(path)!r} (relative paths start at {Path.cwd()}): {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ValueError(f"workflow {str(path)!r} is not valid JSON: {exc}") from None
        if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
            raise ValueError(f"workflow {str(path)!r} is in ComfyUI's UI format; save it with 'Save (API Format)'")
        if not isinstance(graph, dict) or not graph or not all(
            isinstance(node, dict) and isinstance(node.get("inputs"), dict) for node in graph.values()
        ):
            raise ValueError(f"workflow {str(path)!r} is not an API-format workflow ({{node id: {{class_type, inputs}}}})")
        nodes = ", ".join(f"{key} {node.get('class_type')}" for key, node in graph.items())
        for option, node, name in self.targets() + ([("output_node", self.output_node, "")] if self.output_node else []):
            if node not in graph:
                raise ValueError(f"workflow {str(path)!r} has no node {node!r} for {option} (its nodes: {nodes})")
            if name and name not in graph[node]["inputs"]:
                raise ValueError(f"workflow {str(path)!r}: node {node!r} ({graph[node].get('class_type')}) has no "
                                 f"input {name!r} for {option}")
        return graph


class ComfyUIAdapter(Adapter):
    provider: ClassVar[str] = "comfyui"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    options_model: ClassVar[type[BaseModel]] = ComfyUIOptions
    options: ComfyUIOptions
    # The workflow is not read when the adapter is built (that would raise outside probe()):
    # it is read on every run instead, so a file gone missing is that run's probe_error.
    options_context: ClassVar[dict[str, Any]] = DEFER_FILES

    def __init__(self, service: Any) -> None:
        super().__init__(service)
        self.client_id = uuid.uuid4().hex

    def headers(self) -> dict[str, str]:
        return dict(self.service.headers)

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        return _failure(response, raw)

    def _request(self, method: str, path: str, **fields: Any) -> Request:
        return Request(method, f"{self.base_url}{path}", headers=self.headers(), **fields)

    def build_graph(self, ctx: ProbeContext) -> tuple[dict[str, Any], int]:
        """The workflow with the canary (and, unless turned off, a unique ``genstatus_run``) written into it, and the seed."""
        if ctx.canary is None:
            raise ProbeFailure(Outcome.PROBE_ERROR, "a generation probe needs a canary")
        try:
            graph = copy.deepcopy(self.options.load_workflow())
        except ValueError as exc:
            raise ProbeFailure(Outcome.PROBE_ERROR, str(exc)) from None
        seed = ctx.seed if ctx.seed is not None else random_seed()
        values = {"prompt_node": ctx.canary.prompt, "negative_node": ctx.canary.negative_prompt, "seed_node": seed,
                  "model_node": self.service.model}
        dimensions = ctx.canary.dimensions
        for option, node, name in self.options.targets():
            value = values.get(option)
            if option == "size_node" and dimensions is not None:
                value = dimensions[0] if name == self.options.width_input else dimensions[1]
            if value is not None:
                graph[node]["inputs"][name] = value
        fresh = self.options.seed_node or self.options.prompt_node
        if self.options.defeat_cache and fresh is not None:
            graph[fresh]["inputs"][RUN_INPUT] = uuid.uuid4().hex
        return graph, seed

    def generate(self, ctx: ProbeContext) -> Generation:
        graph, seed = self.build_graph(ctx)
        submit = self._request("POST", "/prompt", json={"prompt": graph, "client_id": self.client_id}, what="prompt answer")
        reply = self.send(ctx, submit, phase="submit")
        prompt_id = reply.object().get("prompt_id")
        if not isinstance(prompt_id, str) or not prompt_id:
            raise bad_output("POST /prompt answered without a prompt_id", reply.response)
        ctx.request_id = prompt_id
        entry = self._wait(ctx, prompt_id)
        image_ref = self._image_ref(entry, prompt_id)
        _check_generated(graph, entry, prompt_id)
        query = urlencode({"filename": image_ref.get("filename", ""), "subfolder": image_ref.get("subfolder", ""),
                           "type": image_ref.get("type", "output")})
        image, _ = download_image(ctx, f"{self.base_url}/view?{query}")
        model = graph[self.options.model_node]["inputs"].get(self.options.model_input) if self.options.model_node else None
        return Generation(
            image=image, http_status=200, request_id=prompt_id,
            model_version=str(model) if model else self.service.model, seed=seed,
        )

    def _wait(self, ctx: ProbeContext, prompt_id: str) -> dict[str, Any]:
        clock = PhaseClock(ctx, "queue")

        def step() -> dict[str, Any] | None:
            if clock.phase == "queue":
                queue = self._get_json(ctx, "/queue")
                if prompt_id in _queued_ids(queue.get("queue_pending")):
                    clock.seen("queue")
                    return None
            # not pending: running, finished or unknown; /history decides before the gap is charged
            entry = self._get_json(ctx, f"/history/{quote(prompt_id, safe='')}").get(prompt_id)
            if isinstance(entry, dict):
                clock.finished()
                ran = _run_ms(entry)
                if ran is not None:
                    clock.ran_for(ran)
                return entry
            clock.seen("generation")
            return None

        try:
            return poll(ctx, step, what="ComfyUI prompt", on_deadline=lambda: self._abandon(ctx, prompt_id))
        finally:
            clock.seen()

    def _abandon(self, ctx: ProbeContext, prompt_id: str) -> None:
        """After the deadline: delete our prompt if it still waits; interrupt it if it runs and the server can target it."""
        # the run's deadline has passed and reading an answer honours it: these few requests get a short budget of their own
        ctx.deadline = max(ctx.deadline, time.monotonic() + CANCEL_TIMEOUT_S)
        self._cancel_request(ctx, "POST", "/queue", json={"delete": [prompt_id]})
        queue = object_or_empty(self._cancel_request(ctx, "GET", "/queue").body)
        if prompt_id not in _queued_ids(queue.get("queue_running")):
            return
        stats = object_or_empty(self._cancel_request(ctx, "GET", "/system_stats").body)
        version = object_at(stats, "system").get("comfyui_version")
        if _release(version) >= TARGETED_INTERRUPT_SINCE:  # never a bare interrupt: it stops whatever runs
            self._cancel_request(ctx, "POST", "/interrupt", json={"prompt_id": prompt_id})

    def _cancel_request(self, ctx: ProbeContext, method: str, path: str, json: Any = None) -> Reply:
        request = self._request(method, path, json=json, timeout=cancel_timeout(), what=f"{method} {path}")
        return self.send(ctx, request, ok=ANY_STATUS, limit=MAX_JSON_BODY, record=False)

    def _image_ref(self, entry: dict[str, Any], prompt_id: str) -> dict[str, Any]:
        status = object_at(entry, "status")
        if status.get("status_str") == "error":
            raise ProbeFailure(Outcome.SERVER_ERROR, f"prompt {prompt_id} failed: {_execution_error(status)}",
                               http_status=200, request_id=prompt_id)
        outputs = object_at(entry, "outputs")
        nodes = [self.options.output_node] if self.options.output_node else list(outputs)
        for node in nodes:
            images = (outputs.get(node) or {}).get("images") if isinstance(outputs.get(node), dict) else None
            if isinstance(images, list) and images and isinstance(images[0], dict) and images[0].get("filename"):
                return images[0]
        # older builds have no "status": an entry without images is a run that produced nothing (❓)
        where = f"node {self.options.output_node}" if self.options.output_node else "any output node"
        raise ProbeFailure(Outcome.BAD_OUTPUT, f"prompt {prompt_id} finished without images in {where}",
                           http_status=200, request_id=prompt_id)

    def _get_json(self, ctx: ProbeContext, path: str) -> dict[str, Any]:
        return self.send(ctx, self._request("GET", path, what=f"GET {path}"), limit=MAX_JSON_BODY).object()

    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        reply = self.send(ctx, self._request("GET", "/system_stats", what="system stats"), limit=MAX_JSON_BODY)
        stats = reply.object()
        if not isinstance(stats.get("system"), dict):
            raise bad_output("system_stats has no 'system' object", reply.response)
        devices = stats.get("devices")
        detail = None if isinstance(devices, list) and devices else "ComfyUI reports no devices"
        return HealthCheck(http_status=reply.status_code, detail=detail)


def _queued_ids(items: Any) -> set[str]:
    """Prompt ids in a /queue list: each item is ``[number, prompt_id, prompt, extra_data, outputs, ...]``."""
    return {item[1] for item in items or [] if isinstance(item, list) and len(item) > 1 and isinstance(item[1], str)}


def _messages(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``status.messages`` (``[[event, data], ...]``) by event; the first of each."""
    found: dict[str, dict[str, Any]] = {}
    for message in object_at(entry, "status").get("messages") or []:
        if isinstance(message, list) and len(message) == 2 and isinstance(message[0], str) and isinstance(message[1], dict):
            found.setdefault(message[0], message[1])
    return found


def _run_ms(entry: dict[str, Any]) -> float | None:
    """How long the server ran the prompt by its own clock (``execution_start`` to its end), if it says."""
    messages = _messages(entry)
    began = messages.get("execution_start", {}).get("timestamp")
    end = next((messages[e].get("timestamp") for e in ("execution_success", "execution_error", "execution_interrupted")
                if e in messages), None)
    numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (began, end))
    return float(end - began) if numbers and end >= began else None  # type: ignore[operator]


def _check_generated(graph: dict[str, Any], entry: dict[str, Any], prompt_id: str) -> None:
    """A run whose every node but the outputs came from ComfyUI's cache generated nothing: not a measurement."""
    cached = _messages(entry).get("execution_cached", {}).get("nodes")
    if not isinstance(cached, list):
        return
    outputs = set(object_at(entry, "outputs"))
    work = [node for node in graph if node not in outputs] or list(graph)
    if all(node in cached for node in work):
        raise ProbeFailure(
            Outcome.PROBE_ERROR,
            f"prompt {prompt_id} was answered from ComfyUI's cache (execution_cached: nodes {', '.join(sorted(map(str, cached), key=lambda n: (len(n), n)))}): "
            "nothing was generated, so the run measured nothing; keep defeat_cache on, or check that the "
            f"server keys its cache on the {RUN_INPUT!r} input", http_status=200, request_id=prompt_id)


def _release(version: Any) -> tuple[int, ...]:
    """``"0.3.64"`` -> ``(0, 3, 64)``; anything unreadable -> ``()``, older than every release."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", version) if isinstance(version, str) else None
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _execution_error(status: dict[str, Any]) -> str:
    """The exception message of an ``execution_error`` in ``status.messages`` (``[[event, data], ...]``)."""
    for message in status.get("messages") or []:
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error" and isinstance(message[1], dict):
            data = message[1]
            where = f"node {data.get('node_id')} ({data.get('node_type')})"
            return f"{where}: {data.get('exception_type') or 'error'}: {str(data.get('exception_message') or '').strip()}"
        if isinstance(message, list) and message and message[0] == "execution_interrupted":
            return "execution interrupted"
    return "status_str error without an execution_error message"


def _failure(response: httpx.Response, raw: bytes) -> ProbeFailure:
    """Classify an error: ComfyUI's ``{"error": {...}|str, "node_errors": {...}}`` or a proxy's answer.

    ComfyUI has no auth or rate limit of its own: 401/403/429 come from a proxy in front of it, and an
    invalid workflow (4xx) is the operator's to fix.
    """
    body = object_or_empty(raw)
    error = body.get("error")
    if isinstance(error, dict):
        message = ": ".join(str(part) for part in (error.get("type"), error.get("message"), error.get("details")) if part)
    else:
        message = str(error or body_text(raw))
    detail = f"HTTP {response.status_code}: {message}"
    node_errors = body.get("node_errors")
    if isinstance(node_errors, dict) and node_errors:
        detail += "; " + "; ".join(_node_error(node, value) for node, value in node_errors.items())
    return status_failure(response, detail, auth_statuses=(401, 403))


def _node_error(node: str, value: Any) -> str:
    if not isinstance(value, dict):
        return f"node {node}: {value}"
    errors = [e for e in value.get("errors") or [] if isinstance(e, dict)]
    said = ", ".join(": ".join(str(p) for p in (e.get("message"), e.get("details")) if p) for e in errors)
    return f"node {node} ({value.get('class_type')}): {said or 'invalid'}"
