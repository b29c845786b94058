"""The Black Forest Labs FLUX API (docs/providers.md, bfl; ◐: from docs copies, no official SDK).

Routes (under ``/bfl``, the service's ``base_url`` in place of ``https://api.bfl.ai``):
``POST /v1/<model>`` submits and answers ``{"id", "polling_url", "cost"}``; ``GET /v1/get_result?id=``
(the ``polling_url``) answers the task's state; ``GET /v1/credits``; signed result files are
served from ``/results/<file>``.  A task is ``Pending`` without ``progress`` for ``QUEUE_S``
(queued), ``Pending`` with ``progress`` (flux-2: ``Generating``) for ``RUN_S``, then terminal.
Authentication is the ``x-key`` header; errors are ``{"detail": ...}``.  Tasks live in memory.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from probes.emulator.faults import (
    FAULTS,
    IMAGE_FAULTS,
    JOB_FAULT_OUTCOMES,
    REQUEST_FAULTS,
    Fault,
    FaultBoard,
    delay,
    service_of,
    timeline,
)
from probes.emulator.images import image_for
from probes.emulator.jobs import Recent
from probes.emulator.responses import is_fault, json_response

PROVIDER = "bfl"
QUEUE_S = 0.15
RUN_S = 0.3
MAX_JOBS = 256
SEED_MAX = 2**32 - 1
CREDITS = 1000.0
MODELS = {  # endpoint -> (size input, cost in credits)
    "flux-pro-1.1": ("width_height", 4.0),
    "flux-pro": ("width_height", 5.0),
    "flux-dev": ("width_height", 2.5),
    "flux-2-pro": ("width_height", 3.0),
    "flux-pro-1.1-ultra": ("aspect_ratio", 6.0),
    "flux-kontext-pro": ("aspect_ratio", 4.0),
}
MEGAPIXEL = 1024 * 1024

#: what a service needs to talk to this emulator, besides allow_private_network (cross-provider tests)
SERVICE_DEFAULTS: dict[str, Any] = {"model": "flux-pro-1.1"}
#: fault -> the outcome the adapter (plus scoring) must produce (``slow`` with ``seconds`` well inside
#: the deadline); noise/blur/model swap are left to quality scoring
FAULT_OUTCOMES: dict[str, str] = dict(JOB_FAULT_OUTCOMES)


class BFLError(Exception):
    """An error answer ``{"detail": ...}``."""

    def __init__(self, status: int, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.body = {"detail": detail}
        self.headers = headers or {}


@dataclass
class Task:
    id: str
    model: str
    prompt: str
    width: int
    height: int
    fmt: str
    seed: int
    fault: Fault | None
    root: str  # URL of the emulator's /bfl (with any /s/<service> scope)
    created: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    sample: str | None = None

    def fault_is(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    def state(self, now: float) -> tuple[str, float | None]:
        """(status, progress)."""
        elapsed = now - self.created
        queue_s, run_s = timeline(self.fault, QUEUE_S, RUN_S)
        if elapsed < queue_s:
            return "Pending", None
        if elapsed < queue_s + run_s or self.fault_is("stuck_job"):
            progress = min((elapsed - queue_s) / run_s, 0.99) if run_s else 0.0
            return ("Generating" if self.model.startswith("flux-2") else "Pending"), round(progress, 2)
        if self.fault_is("content_policy"):
            return "Request Moderated", None
        if self.fault_is("output_safety"):
            return "Content Moderated", None
        if self.fault_is("job_failure"):
            return "Error", None
        return "Ready", None


class BFLEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._tasks: Recent[Task] = Recent(MAX_JOBS)
        self._files: Recent[tuple[bytes, str]] = Recent(MAX_JOBS)
        self._routes = Map(
            [
                Rule("/v1/get_result", methods=["GET"], endpoint="result"),
                Rule("/v1/credits", methods=["GET"], endpoint="credits"),
                Rule("/v1/<model>", methods=["POST"], endpoint="submit"),
                Rule("/results/<file_id>", methods=["GET"], endpoint="file"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            if endpoint == "file":
                return self._file(request, args["file_id"])
            key = _authorize(request)
            if endpoint == "submit":
                return self._submit(request, path, key, args["model"])
            # request-level faults hit the cheap check and polls too (a malformed answer only the former)
            applicable = REQUEST_FAULTS if endpoint == "credits" else REQUEST_FAULTS - {"malformed_json"}
            fault = self.faults.take(PROVIDER, applicable, service=service_of(request.environ))
            delay(fault, self.stop)
            if endpoint == "credits":
                return self._credits(fault, key)
            _raise_for_fault(fault, key)
            return self._result(request.args.get("id", ""))
        except (NotFound, MethodNotAllowed):
            return _error(BFLError(404, "Not Found"))
        except BFLError as exc:
            return _error(exc)

    # -- endpoints ----------------------------------------------------------------------

    def _submit(self, request: Request, path: str, key: str, model: str) -> Response:
        if model not in MODELS:
            raise BFLError(404, "Not Found")
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise _invalid([], "Input should be a valid dictionary", "dict_type")
        fault = self.faults.take(PROVIDER, set(FAULTS), service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, key)
        width, height, fmt, seed = _validate(model, body)
        root = request.host_url.rstrip("/") + request.path[: len(request.path) - len(path)]
        task = Task(str(uuid.uuid4()), model, body["prompt"], width, height, fmt, seed, fault, root)
        self._tasks.put(task.id, task)
        megapixels = round(width * height / MEGAPIXEL, 2)
        answer = {"id": task.id, "polling_url": f"{root}/v1/get_result?id={task.id}",
                  "cost": MODELS[model][1], "input_mp": 0, "output_mp": megapixels}
        return json_response(answer, malformed=task.fault_is("malformed_json"))

    def _result(self, task_id: str) -> Response:
        task = self._tasks.get(task_id)
        if task is None or task.fault_is("unknown_job"):
            return json_response({"id": task_id, "status": "Task not found", "result": None, "progress": None})
        status, progress = task.state(time.monotonic())
        answer: dict[str, Any] = {"id": task.id, "status": status, "result": None, "progress": progress,
                                  "details": None, "preview": None}
        if status == "Ready":
            end = task.created_wall + QUEUE_S + RUN_S
            answer["result"] = {"sample": self._sample(task), "prompt": task.prompt, "seed": task.seed,
                                "start_time": task.created_wall + QUEUE_S, "end_time": end, "duration": RUN_S}
        elif status == "Request Moderated":
            answer["details"] = {"Moderation Reasons": ["Derivative Works Filter"]}
        elif status == "Content Moderated":
            answer["details"] = {"Moderation Reasons": ["NSFW"]}
        elif status == "Error":
            answer["details"] = {"error": "Generation failed (emulated fault job_failure)"}
        return json_response(answer)

    def _credits(self, fault: Fault | None, key: str) -> Response:
        if is_fault(fault, "quota_exhausted"):
            return json_response({"credits": 0.0})  # the cheap check's view of exhausted credits
        _raise_for_fault(fault, key)
        return json_response({"credits": CREDITS}, malformed=is_fault(fault, "malformed_json"))

    def _file(self, request: Request, file_id: str) -> Response:
        stored = self._files.get(file_id)
        if stored is None or request.args.get("sig") != _signature(file_id):
            # Azure blob storage's answer for a missing blob
            return Response('<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code></Error>', 404,
                            mimetype="application/xml")
        return Response(stored[0], mimetype=stored[1])

    def _sample(self, task: Task) -> str:
        """The signed URL of the task's image, rendered on first request."""
        if task.sample is None:
            name = task.fault.name if task.fault is not None and task.fault.name in IMAGE_FAULTS else None
            image = image_for(name, task.prompt, task.seed, task.model, task.width, task.height, fmt=task.fmt)
            file_id = f"{uuid.uuid4().hex}.{'jpeg' if task.fmt == 'jpeg' else task.fmt}"
            if not task.fault_is("expired_url"):
                mime = "image/png" if image.startswith(b"\x89PNG") else f"image/{task.fmt}"
                self._files.put(file_id, (image, mime))
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
            task.sample = f"{task.root}/results/{file_id}?se={expiry}&sp=r&sv=2024-11-04&sr=b&sig={_signature(file_id)}"
        return task.sample


def _signature(file_id: str) -> str:
    return hashlib.sha256(f"emulator-signing-key:{file_id}".encode()).hexdigest()[:43]


# -- request checks -----------------------------------------------------------------------


def _authorize(request: Request) -> str:
    key = request.headers.get("x-key", "").strip()
    if not key:
        raise BFLError(403, "Not authenticated")
    return key


def _validate(model: str, body: dict[str, Any]) -> tuple[int, int, str, int]:
    """(width, height, format, seed) of a valid request; FastAPI's 422 otherwise."""
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise _invalid(["body", "prompt"], "Field required", "missing")
    fmt = body.get("output_format", "jpeg")
    if fmt not in ("jpeg", "png"):
        raise _invalid(["body", "output_format"], "Input should be 'jpeg' or 'png'", "enum")
    tolerance = body.get("safety_tolerance", 2)
    if not isinstance(tolerance, int) or not 0 <= tolerance <= 6:
        raise _invalid(["body", "safety_tolerance"], "Input should be less than or equal to 6", "less_than_equal")
    if MODELS[model][0] == "aspect_ratio":
        width, height = _dimensions(body.get("aspect_ratio", "16:9"))
    else:
        width, height = body.get("width", 1024), body.get("height", 768)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool) or not 256 <= value <= 1440 or value % 32:
                raise _invalid(["body", name], "Input should be a multiple of 32 between 256 and 1440", "multiple_of")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _invalid(["body", "seed"], "Input should be a valid integer", "int_type")
    if seed is None or seed <= 0:
        seed = random.randint(1, SEED_MAX)  # noqa: S311 - a fresh picture, not a secret
    return width, height, fmt, seed


def _dimensions(ratio: Any) -> tuple[int, int]:
    """~1 megapixel in ``ratio`` (the real ultra renders ~4 MP; 1 MP keeps the emulator fast)."""
    try:
        w, h = (int(part) for part in str(ratio).split(":"))
        assert 9 * w <= 21 * h and 9 * h <= 21 * w
    except (ValueError, AssertionError):
        raise _invalid(["body", "aspect_ratio"], "Aspect ratio must be between 21:9 and 9:21", "value_error") from None
    width = round((MEGAPIXEL * w / h) ** 0.5 / 32) * 32
    return width, round(width * h / w / 32) * 32


def _invalid(loc: list[str], message: str, kind: str) -> BFLError:
    return BFLError(422, [{"loc": loc, "msg": message, "type": kind}])


def _raise_for_fault(fault: Fault | None, key: str) -> None:
    """Turn a request-level fault into the answer the real API sends for it."""
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise BFLError(500, "Internal Server Error")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        # ❓ whether BFL sends Retry-After; the adapter reports it when present
        raise BFLError(429, "You have exceeded the number of active tasks (24). Please wait for a task to finish.",
                       headers={"Retry-After": str(seconds)})
    if name == "quota_exhausted":
        raise BFLError(402, "Insufficient credits. Please add credits at https://dashboard.bfl.ai to continue.")
    if name == "invalid_key":
        # The real API does not echo keys; the emulator does, to test the monitor's redaction.
        raise BFLError(403, f"Invalid API key: {key}")
    if name == "bad_request":
        raise _invalid(["body", "width"], "Input should be a multiple of 32 (emulated fault bad_request)", "multiple_of")


# -- answers --------------------------------------------------------------------------------


def _error(error: BFLError) -> Response:
    return json_response(error.body, error.status, headers=error.headers)
