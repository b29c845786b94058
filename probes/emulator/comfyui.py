"""ComfyUI's HTTP API (docs/providers.md, comfyui): queue, history, view, interrupt, system stats.

Routes (under ``/comfyui``, also with ComfyUI's ``/api`` prefix): ``POST /prompt``,
``GET /queue``, ``POST /queue`` (``{"delete": [ids]}``), ``GET /history/{id}``,
``GET /view``, ``POST /interrupt``, ``GET /system_stats``.  Workflows are validated like
ComfyUI does for the nodes of the default text-to-image graph (unknown class types, missing
inputs, unknown checkpoints, no output node; inputs a node does not declare are ignored, as
ComfyUI ignores them); prompts run one at a time, ``RUN_S`` each.  The picture comes from
(positive prompt, KSampler seed, checkpoint) at the EmptyLatentImage size.

The execution cache is ComfyUI's: per node, keyed on its class, its inputs (declared or not)
and its ancestors' keys.  A node seen before is not run again and is listed in the history's
``execution_cached`` message; a prompt whose every node is cached is done at once with the
same files.  The ``execution_cached`` fault answers every node from the cache whatever the
inputs (a server whose cache ignores what genstatus varies); the ``timeline`` fault scripts a
prompt: pending ``queue_s``, running ``run_s``, then done.

``/v<version>`` in front of a route (``/comfyui/v0.3.43/...``) emulates that release (default
``DEFAULT_VERSION``): from ``TARGETED_INTERRUPT_SINCE`` on, ``POST /interrupt`` with
``{"prompt_id"}`` stops that prompt only if it is the running one; before, the body is
ignored and whatever runs is stopped, as older ComfyUI builds do.

ComfyUI has no auth, rate limit or safety filter: ``invalid_key`` and ``rate_limited``
are what an authenticating reverse proxy in front of it answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from probes.emulator.faults import IMAGE_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of, timeline
from probes.emulator.images import image_for
from probes.emulator.responses import is_fault, json_response

PROVIDER = "comfyui"
RUN_S = 0.3  # how long one prompt "runs"
SAVE_S = 0.02  # how long a prompt runs when only its output nodes execute
DEFAULT_VERSION = "0.3.64"
#: the first release whose ``/interrupt`` honours ``prompt_id`` (ComfyUI PR #9607; ❓ an earlier one may have it)
TARGETED_INTERRUPT_SINCE = (0, 3, 64)
VERSION_PREFIX = re.compile(r"/v(\d+(?:\.\d+)*)(?=/)")
CHECKPOINTS = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors", "flux1-schnell-fp8.safetensors")
# class_type -> (required inputs, is an output node)
NODES: dict[str, tuple[tuple[str, ...], bool]] = {
    "CheckpointLoaderSimple": (("ckpt_name",), False),
    "CLIPTextEncode": (("text", "clip"), False),
    "EmptyLatentImage": (("width", "height", "batch_size"), False),
    "KSampler": (("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image",
                  "denoise"), False),
    "VAEDecode": (("samples", "vae"), False),
    "SaveImage": (("images", "filename_prefix"), True),
    "PreviewImage": (("images",), True),
}
PROMPT_FAULTS = {"server_error", "rate_limited", "hang", "slow", "invalid_key", "malformed_json", "bad_request",
                 "job_failure", "stuck_job", "unknown_job", "expired_url", "execution_cached", "timeline"} | IMAGE_FAULTS
MAX_JOBS = 256
MAX_CACHED_NODES = 4096


class ComfyError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass
class Job:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    fault: str | None
    start: float
    end: float | None  # None: never finishes (stuck)
    outputs: list[str]  # output node ids
    files: dict[str, str] = field(default_factory=dict)  # output node -> file name
    cached: list[str] = field(default_factory=list)  # node ids answered from the cache
    interrupted: bool = False

    def state(self, now: float) -> str:
        if now < self.start:
            return "pending"
        return "running" if self.end is None or now < self.end else "done"

    def queue_item(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, {"client_id": "emulated"}, self.outputs]


class ComfyUIEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, Job] = {}
        #: node cache key -> the file its output node saved ("" for other nodes); newest last
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._busy_until = 0.0
        self._number = 0

    def handle(self, request: Request, path: str) -> Response:
        path = path.removeprefix("/api") or "/"
        version = DEFAULT_VERSION
        if match := VERSION_PREFIX.match(path):
            version, path = match.group(1), path[match.end():]
        try:
            if request.method == "POST" and path == "/prompt":
                return self._prompt(request)
            if request.method == "GET" and path == "/queue":
                return self._queue()
            if request.method == "POST" and path == "/queue":
                return self._delete(request)
            if request.method == "GET" and path.startswith("/history/"):
                return self._history(path.removeprefix("/history/"))
            if request.method == "GET" and path == "/view":
                return self._view(request)
            if request.method == "POST" and path == "/interrupt":
                return self._interrupt(request, version)
            if request.method == "GET" and path == "/system_stats":
                return self._system_stats(request, version)
            return Response("404: Not Found", 404, mimetype="text/plain")
        except ComfyError as exc:
            body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body)
            mimetype = "text/plain" if isinstance(exc.body, str) else "application/json"
            return Response(body, exc.status, mimetype=mimetype, headers=exc.headers)

    # -- endpoints ------------------------------------------------------------------------------

    def _prompt(self, request: Request) -> Response:
        fault = self.faults.take(PROVIDER, PROMPT_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, request)
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or "prompt" not in body:
            raise ComfyError(400, {"error": {"type": "no_prompt", "message": "No prompt provided",
                                             "details": "No prompt provided", "extra_info": {}}, "node_errors": {}})
        graph = body["prompt"]
        outputs = _validate(graph)
        name = fault.name if fault is not None else None
        prompt_id = str(uuid.uuid4())
        now = time.monotonic()
        keys = _cache_keys(graph)
        with self._lock:
            self._number += 1
            cached = [node for node, key in keys.items() if key in self._cache] if name is None else []
            if name == "execution_cached":  # a cache that ignores what changed: nothing runs, the picture is as it was
                cached = list(graph)
            job = Job(prompt_id, self._number, graph, name, now, now, outputs, cached=cached)
            if len(cached) == len(graph):  # every node cached: done at once, the files it saved before
                for node in outputs:
                    job.files[node] = self._cache.get(keys[node]) or self._file_name(graph, node)
            elif name == "stuck_job":  # a stalled worker: pending for ever, blocking no one else here
                job.start, job.end = float("inf"), None
            else:
                pending_s, running_s = timeline(fault, 0.0, RUN_S)
                if name != "timeline" and all(node in outputs for node in graph if node not in cached):
                    running_s = SAVE_S  # only the output nodes run: they save what the cache holds
                job.start = max(now + pending_s, self._busy_until)
                job.end = job.start + running_s
                self._busy_until = job.end
                for node in outputs:
                    job.files[node] = self._file_name(graph, node)
            if name is None:
                for node, key in keys.items():
                    self._cache[key] = job.files.get(node, "")
                    self._cache.move_to_end(key)
                while len(self._cache) > MAX_CACHED_NODES:
                    self._cache.popitem(last=False)
            if name != "unknown_job":  # unknown: the id is never heard of again, as after a restart
                self._remember(job)
        payload = {"prompt_id": prompt_id, "number": job.number, "node_errors": {}}
        return json_response(payload, malformed=name == "malformed_json")

    def _file_name(self, graph: dict[str, Any], node: str) -> str:
        prefix = graph[node]["inputs"].get("filename_prefix", "ComfyUI")
        return f"{prefix}_{self._number:05d}_.png"

    def _remember(self, job: Job) -> None:
        self._jobs[job.prompt_id] = job
        for file_name in job.files.values():
            if job.fault != "expired_url" and file_name not in self._files:
                self._files[file_name] = job
        while len(self._jobs) > MAX_JOBS:
            self._jobs.pop(next(iter(self._jobs)))

    def _queue(self) -> Response:
        now = time.monotonic()
        with self._lock:
            jobs = list(self._jobs.values())
        running = [job.queue_item() for job in jobs if job.state(now) == "running"]
        pending = [job.queue_item() for job in jobs if job.state(now) == "pending"]
        return json_response({"queue_running": running, "queue_pending": pending})

    def _delete(self, request: Request) -> Response:
        body = request.get_json(force=True, silent=True) or {}
        now = time.monotonic()
        with self._lock:
            for prompt_id in body.get("delete") or []:
                job = self._jobs.get(prompt_id)
                if job is not None and job.state(now) == "pending":
                    del self._jobs[prompt_id]
        return Response(status=200)

    def _interrupt(self, request: Request, version: str) -> Response:
        """Stop the running prompt: only the named one on a new release, whatever runs on an old one."""
        body = request.get_json(force=True, silent=True)
        wanted = body.get("prompt_id") if isinstance(body, dict) and _release(version) >= TARGETED_INTERRUPT_SINCE else None
        now = time.monotonic()
        with self._lock:
            for job in list(self._jobs.values()):
                if job.state(now) == "running" and (not wanted or job.prompt_id == wanted):
                    self._stop_job(job, now)
        return Response(status=200)

    def _stop_job(self, job: Job, now: float) -> None:
        """End ``job`` now, interrupted; the prompts queued behind it move up by the time it no longer takes."""
        freed = (job.end - now) if job.end is not None else 0.0
        job.end, job.interrupted = now, True
        if job.end is not None and freed > 0:
            for other in self._jobs.values():
                if other is not job and other.start >= now and other.end is not None and other.start != float("inf"):
                    other.start, other.end = other.start - freed, other.end - freed
            self._busy_until -= freed

    def _history(self, prompt_id: str) -> Response:
        now = time.monotonic()
        with self._lock:
            job = self._jobs.get(prompt_id)
        if job is None or job.state(now) != "done":
            return json_response({})
        return json_response({prompt_id: _history_entry(job)})

    def _view(self, request: Request) -> Response:
        with self._lock:
            job = self._files.get(request.args.get("filename", ""))
        if job is None or request.args.get("type", "output") != "output":
            return Response("404: Not Found", 404, mimetype="text/plain")
        prompt, seed, model, width, height = _parameters(job.graph)
        fault = job.fault if job.fault in IMAGE_FAULTS else None
        image = image_for(fault, prompt, seed, model, width, height)
        return Response(image, mimetype="image/png")

    def _system_stats(self, request: Request, version: str) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, request)
        gib = 1024**3
        payload = {
            "system": {"os": "posix", "ram_total": 64 * gib, "ram_free": 40 * gib, "comfyui_version": version,
                       "python_version": "3.12.3", "pytorch_version": "2.7.1+cu128", "embedded_python": False,
                       "argv": ["main.py", "--listen"]},
            "devices": [{"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": 24 * gib, "vram_free": 20 * gib, "torch_vram_total": 2 * gib,
                         "torch_vram_free": gib}],
        }
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))


def _validate(graph: Any) -> list[str]:
    """The output node ids, or ComfyUI's 400 for an invalid workflow."""
    def fail(kind: str, message: str, details: str = "", node_errors: dict[str, Any] | None = None) -> ComfyError:
        return ComfyError(400, {"error": {"type": kind, "message": message, "details": details, "extra_info": {}},
                                "node_errors": node_errors or {}})

    if not isinstance(graph, dict):
        raise fail("invalid_prompt", "Prompt must be a JSON object of nodes")
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise fail("invalid_prompt", "Cannot execute because a node is missing the class_type property.", f"Node ID '#{node_id}'")
        if node["class_type"] not in NODES:
            raise fail("missing_node_type", f"Node '{node['class_type']}' not found. The custom node may not be installed.",
                       f"Node ID '#{node_id}'")
    outputs = [node_id for node_id, node in graph.items() if NODES[node["class_type"]][1]]
    if not outputs:
        raise fail("prompt_no_outputs", "Prompt has no outputs")
    node_errors: dict[str, Any] = {}
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        errors = [{"type": "required_input_missing", "message": "Required input is missing", "details": name,
                   "extra_info": {"input_name": name}} for name in NODES[node["class_type"]][0] if name not in inputs]
        for name, value in inputs.items():
            if isinstance(value, list) and (len(value) != 2 or value[0] not in graph):
                errors.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of [string, int]",
                               "details": f"{name}: {value}", "extra_info": {"input_name": name}})
        ckpt = inputs.get("ckpt_name")
        if node["class_type"] == "CheckpointLoaderSimple" and ckpt is not None and ckpt not in CHECKPOINTS:
            errors.append({"type": "value_not_in_list", "message": "Value not in list",
                           "details": f"ckpt_name: '{ckpt}' not in {list(CHECKPOINTS)}",
                           "extra_info": {"input_name": "ckpt_name", "received_value": ckpt}})
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": outputs, "class_type": node["class_type"]}
    if node_errors:
        raise fail("prompt_outputs_failed_validation", "Prompt outputs failed validation", "", node_errors)
    return outputs


def _parameters(graph: dict[str, Any]) -> tuple[str, int, str, int, int]:
    """(positive prompt, seed, checkpoint, width, height) of a validated graph."""
    def first(class_type: str) -> dict[str, Any]:
        return next((n["inputs"] for n in graph.values() if n["class_type"] == class_type), {})

    sampler = first("KSampler")
    positive = graph.get(str((sampler.get("positive") or [""])[0]), {}).get("inputs", {})
    latent = first("EmptyLatentImage")
    seed = sampler.get("seed", 0)
    return (str(positive.get("text", "")), seed if isinstance(seed, int) else 0, str(first("CheckpointLoaderSimple").get("ckpt_name", "")),
            int(latent.get("width", 512)), int(latent.get("height", 512)))


def _cache_keys(graph: dict[str, Any]) -> dict[str, str]:
    """Node id -> its cache key: class, every input (linked ones by their ancestor's key), as ComfyUI keys its cache."""
    keys: dict[str, str] = {}

    def key(node: str, seen: frozenset[str] = frozenset()) -> str:
        if node not in keys:
            spec = graph[node]
            inputs = []
            for name, value in sorted(spec.get("inputs", {}).items()):
                if isinstance(value, list) and len(value) == 2 and value[0] in graph and value[0] not in seen:
                    value = ["ANCESTOR", key(value[0], seen | {node}), value[1]]
                inputs.append([name, value])
            keys[node] = hashlib.sha256(json.dumps([spec["class_type"], inputs], sort_keys=True, default=str).encode()).hexdigest()
        return keys[node]

    for node in graph:
        key(node)
    return keys


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _stamp(monotonic: float) -> int:
    """ComfyUI's message timestamp (wall-clock milliseconds) of a ``time.monotonic()`` instant."""
    return int((time.time() - time.monotonic() + monotonic) * 1000)


def _history_entry(job: Job) -> dict[str, Any]:
    end = job.end if job.end is not None else job.start
    messages: list[list[Any]] = [["execution_start", {"prompt_id": job.prompt_id, "timestamp": _stamp(job.start)}],
                                 ["execution_cached", {"nodes": job.cached, "prompt_id": job.prompt_id,
                                                       "timestamp": _stamp(job.start)}]]
    entry: dict[str, Any] = {"prompt": job.queue_item(), "outputs": {}, "meta": {}}
    if job.interrupted:
        messages.append(["execution_interrupted", {
            "prompt_id": job.prompt_id, "node_id": "3", "node_type": "KSampler", "executed": job.cached,
            "timestamp": _stamp(end)}])
        entry["status"] = {"status_str": "error", "completed": False, "messages": messages}
        return entry
    if job.fault == "job_failure":
        messages.append(["execution_error", {
            "prompt_id": job.prompt_id, "node_id": "3", "node_type": "KSampler", "executed": ["4", "5", "6", "7"],
            "exception_message": "Allocation on device 0 would exceed allowed memory. (out of memory)\n",
            "exception_type": "torch.OutOfMemoryError", "traceback": ["  File \"execution.py\", line 496, in execute\n"],
            "current_inputs": {}, "current_outputs": [], "timestamp": _stamp(end)}])
        entry["status"] = {"status_str": "error", "completed": False, "messages": messages}
        return entry
    messages.append(["execution_success", {"prompt_id": job.prompt_id, "timestamp": _stamp(end)}])
    entry["status"] = {"status_str": "success", "completed": True, "messages": messages}
    for node, file_name in job.files.items():
        entry["outputs"][node] = {"images": [{"filename": file_name, "subfolder": "", "type": "output"}]}
        entry["meta"][node] = {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
    return entry


def _raise_for_fault(fault: Fault | None, request: Request) -> None:
    if fault is None:
        return
    if fault.name == "server_error":
        raise ComfyError(500, "500 Internal Server Error\n\nServer got itself in trouble")
    if fault.name == "rate_limited":  # a reverse proxy in front
        seconds = fault.params["retry_after"]
        raise ComfyError(429, "429 Too Many Requests", {"Retry-After": str(seconds)})
    if fault.name == "invalid_key":  # a reverse proxy in front, echoing the token it refused
        token = request.headers.get("Authorization", "(none)")
        raise ComfyError(401, f"401 Unauthorized: invalid credentials {token}", {"WWW-Authenticate": 'Bearer realm="comfyui"'})
    if fault.name == "bad_request":
        raise ComfyError(400, {
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "", "extra_info": {}},
            "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                              "details": "ckpt_name: 'missing.safetensors' not in []",
                                              "extra_info": {"input_name": "ckpt_name"}}],
                                  "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}})


SERVICE_DEFAULTS: dict[str, Any] = {"model": "v1-5-pruned-emaonly.safetensors"}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "hang": "timeout",
    "slow": "ok",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "bad_request": "client_error",
    "job_failure": "server_error",
    "stuck_job": "timeout",
    "unknown_job": "timeout",
    "expired_url": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "wrong_size": "bad_output",
    "execution_cached": "probe_error",
    "timeline": "ok",
}
