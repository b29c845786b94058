"""ComfyUI (docs/providers.md, comfyui; ✅): queue an API-format workflow, poll its history, fetch the image.

The canary is injected into named nodes of a workflow: ``options.workflow`` is a file saved
with ComfyUI's "Save (API Format)"; a relative path is resolved against the monitor's
current directory (the adapter never sees the config file's path, so prefer absolute
paths).  Without it the bundled ``comfyui_workflows/default_api.json`` is used: ComfyUI's
default text-to-image graph, whose node ids are the option defaults below
(3 KSampler ``seed``, 4 CheckpointLoaderSimple ``ckpt_name`` = the service's ``model``,
5 EmptyLatentImage ``width``/``height``, 6/7 CLIPTextEncode ``text`` positive/negative,
9 SaveImage).  A ``*_node`` option set to null leaves that part of the graph alone.

ComfyUI serves an identical graph from its cache, so a canary without a seed gets a fresh
random one every run (reported as the result's seed); a fixed seed makes every run after
the first a cache hit, which measures little more than "the server answers".

Phases: submit = ``POST /prompt``; queue = while ``GET /queue`` lists the prompt as pending;
generation = until ``GET /history/{id}`` has the entry (``{}`` meanwhile, and for an unknown
id: the deadline tells them apart); download = ``GET /view`` through ``download_image``, so a
ComfyUI on a private address needs ``allow_private_network: true``.  At the deadline a
still-pending prompt is deleted from the queue; a running one is not interrupted, because
``POST /interrupt`` on older builds stops whatever is running, not only our prompt.
ComfyUI has no auth of its own: credentials for a proxy in front go in ``service.headers``.
"""

from __future__ import annotations

import copy
import json
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
from probes.http import ANY_STATUS
from probes.polling import PhaseClock, cancel_timeout, poll

DEFAULT_BASE_URL = "http://127.0.0.1:8188"
DEFAULT_WORKFLOW = Path(__file__).parent / "comfyui_workflows" / "default_api.json"
MAX_JSON_BODY = 16 * 1024 * 1024  # /queue and /history repeat whole workflows
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
        """The workflow with the canary written into it, and the seed used."""
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
                clock.seen("generation")  # running, finished or unknown: /history decides
            entry = self._get_json(ctx, f"/history/{quote(prompt_id, safe='')}").get(prompt_id)
            if isinstance(entry, dict):
                clock.finished()
                return entry
            clock.seen("generation")
            return None

        def cancel() -> None:
            delete = self._request("POST", "/queue", json={"delete": [prompt_id]}, timeout=cancel_timeout())
            self.send(ctx, delete, keep=ANY_STATUS, record=False)

        try:
            return poll(ctx, step, what="ComfyUI prompt", on_deadline=cancel)
        finally:
            clock.seen()

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
