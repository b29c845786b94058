"""A made-up "custom generator" for the generic ``http`` adapter (no real API behind it).

Routes under ``/http`` (the service's ``base_url`` is ``.../http``), all taking the JSON
body ``{"prompt", "seed"?, "width"?, "height"?, "model"?}`` and ``Authorization: Bearer KEY``:

- ``POST /generate?at=/data/0/b64_json`` — synchronous; the base64 PNG at the JSON pointer ``at``
- ``POST /generate/url`` — synchronous; ``{"image_url"}`` to download (``GET /files/<id>.png``)
- ``POST /generate/raw`` — synchronous; the PNG itself, safety verdict in the ``x-safety`` header
- ``POST /jobs`` → 202 ``{"id", "status": "queued"}``; ``GET /jobs/<id>`` →
  ``queued`` → ``running`` → ``succeeded`` (``output.url``) | ``failed`` | ``filtered``;
  ``POST /jobs/<id>/cancel``; an unknown id is 404
- ``GET /health`` → ``{"status": "ok"}``

Errors are ``{"error": {"code", "message"}}``; a safety block is a 200 whose ``safety`` is
``blocked_prompt`` (input) or ``blocked_output`` (output), like many in-house gateways.
"""

from __future__ import annotations

import base64
import random
import re
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
    JOB_FAULTS,
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

PROVIDER = "http"
DEFAULT_MODEL = "custom-gen-1"
DEFAULT_POINTER = "/data/0/b64_json"
MAX_KEPT = 128  # jobs and url-mode files kept in memory, oldest dropped first
SAFETY_FAULTS = {"content_policy": "blocked_prompt", "output_safety": "blocked_output"}

#: the ``options`` of a service using the job API (the mode that shows every fault)
JOB_OPTIONS: dict[str, Any] = {
    "path": "/jobs",
    "body": {"prompt": "{prompt}", "seed": "{seed}", "width": "{width}", "height": "{height}", "model": "{model}"},
    "image": {"pointer": "/output/url", "encoding": "url"},
    "model_pointer": "/model",
    "error_pointer": "/error/message",
    "content_filtered": {"pointer": "/safety", "values": ["blocked_prompt", "blocked_output"]},
    "poll": {
        "id_pointer": "/id",
        "url": "/jobs/{id}",
        "status_pointer": "/status",
        "queued": ["queued"],
        "pending": ["running"],
        "success": ["succeeded"],
        "failure": ["failed"],
        "filtered": ["filtered"],
        "cancel_url": "/jobs/{id}/cancel",
    },
    "health": {"path": "/health"},
}
#: what a service needs to talk to this emulator (used by examples and the cross-provider tests)
SERVICE_DEFAULTS: dict[str, Any] = {"model": DEFAULT_MODEL, "options": JOB_OPTIONS}
#: the outcome each emulated fault must produce with ``SERVICE_DEFAULTS`` (quality faults are scoring's)
FAULT_OUTCOMES: dict[str, str] = dict(JOB_FAULT_OUTCOMES)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(frozen=True)
class Spec:
    prompt: str
    seed: int
    width: int
    height: int
    model: str


@dataclass
class Job:
    spec: Spec
    fault: Fault | None
    polls: int = 0
    created: float = field(default_factory=time.monotonic)
    canceled: bool = False
    output: dict[str, Any] | None = field(default=None, repr=False)


class HTTPEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._files: Recent[bytes] = Recent(MAX_KEPT)
        self._jobs: Recent[Job] = Recent(MAX_KEPT)
        self._routes = Map(
            [
                Rule("/generate", methods=["POST"], endpoint="b64"),
                Rule("/generate/url", methods=["POST"], endpoint="url"),
                Rule("/generate/raw", methods=["POST"], endpoint="raw"),
                Rule("/jobs", methods=["POST"], endpoint="submit"),
                Rule("/jobs/<job_id>", methods=["GET"], endpoint="job"),
                Rule("/jobs/<job_id>/cancel", methods=["POST"], endpoint="cancel"),
                Rule("/files/<file_id>.png", methods=["GET"], endpoint="file"),
                Rule("/health", methods=["GET"], endpoint="health"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        request_id = f"gen-{uuid.uuid4().hex[:16]}"
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            if endpoint == "file":
                return self._file(args["file_id"])
            response = getattr(self, f"_{endpoint}")(request, **args)
        except (NotFound, MethodNotAllowed):
            response = _error(ApiError(404, "not_found", f"no route {request.method} {path}"))
        except ApiError as exc:
            response = _error(exc)
        response.headers["x-request-id"] = request_id
        return response

    # -- synchronous endpoints ------------------------------------------------------------

    def _b64(self, request: Request) -> Response:
        pointer = request.args.get("at", DEFAULT_POINTER)
        if not re.fullmatch(r"/[^/\d][^/]*(/[^/]+)*", pointer):  # the first step is a key, not an index
            raise ApiError(400, "invalid_request", f"'at' must be a JSON pointer like {DEFAULT_POINTER}")
        spec, fault = self._begin(request, set(FAULTS) - JOB_FAULTS - {"expired_url"})
        if is_fault(fault, "content_policy"):
            return json_response(_safety_answer(fault))
        image = base64.b64encode(_image(spec, fault)).decode("ascii")
        payload = _nest(pointer, image) | _answer(spec) | _safety_answer(fault)
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))

    def _url(self, request: Request) -> Response:
        spec, fault = self._begin(request, set(FAULTS) - JOB_FAULTS)
        if is_fault(fault, "content_policy"):
            return json_response(_safety_answer(fault))
        url = self._file_url(request, _image(spec, fault), fault)
        payload = {"image_url": url} | _answer(spec) | _safety_answer(fault)
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))

    def _raw(self, request: Request) -> Response:
        spec, fault = self._begin(request, set(FAULTS) - JOB_FAULTS - {"expired_url", "malformed_json"})
        safety = _safety_answer(fault)["safety"]
        image = b"" if is_fault(fault, "content_policy") else _image(spec, fault)
        return Response(image, mimetype="image/png", headers={"x-safety": safety, "x-model": spec.model})

    def _health(self, request: Request) -> Response:
        _authorize(request)
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, request)
        return json_response({"status": "ok"}, malformed=is_fault(fault, "malformed_json"))

    # -- the job API ------------------------------------------------------------------------

    def _submit(self, request: Request) -> Response:
        spec, fault = self._begin(request, set(FAULTS))
        if is_fault(fault, "malformed_json"):
            return json_response({"id": "x", "status": "queued"}, malformed=True)
        if is_fault(fault, "content_policy"):
            return json_response(_safety_answer(fault))
        job_id = uuid.uuid4().hex
        self._jobs.put(job_id, Job(spec, fault))
        return json_response({"id": job_id, "status": "queued", "safety": "passed",
                      "urls": {"get": f"{request.base_url}/{job_id}"}}, status=202)

    def _job(self, request: Request, job_id: str) -> Response:
        _authorize(request)
        job = self._jobs.get(job_id)
        if job is None or is_fault(job.fault, "unknown_job"):
            raise ApiError(404, "not_found", f"job {job_id} not found")
        job.polls += 1
        answer: dict[str, Any] = {"id": job_id, "model": job.spec.model, "output": None, "error": None, "safety": "passed"}
        queue_s, run_s = timeline(job.fault, 0.0, 0.0)  # scripted (``timeline``): queued, running, then done by the clock
        elapsed = time.monotonic() - job.created
        if job.canceled:
            status = "canceled"
        elif elapsed < queue_s or elapsed < queue_s + run_s:
            status = "queued" if elapsed < queue_s else "running"
        elif (job.polls < 2 and not is_fault(job.fault, "timeline")) or is_fault(job.fault, "stuck_job"):
            status = "running"
        elif is_fault(job.fault, "job_failure"):
            status, answer["error"] = "failed", {"code": "worker_crashed", "message": "CUDA error: out of memory"}
        elif is_fault(job.fault, "output_safety"):
            status, answer["safety"] = "filtered", "blocked_output"
        else:
            status = "succeeded"
            if job.output is None:
                job.output = {"url": self._file_url(request, _image(job.spec, job.fault), job.fault)}
            answer["output"] = job.output
        return json_response(answer | {"status": status})

    def _cancel(self, request: Request, job_id: str) -> Response:
        _authorize(request)
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"job {job_id} not found")
        job.canceled = True
        return json_response({"id": job_id, "status": "canceled"})

    # -- shared steps -------------------------------------------------------------------------

    def _begin(self, request: Request, applicable: set[str]) -> tuple[Spec, Fault | None]:
        """Authorize, parse, take the fault and carry out the ones that answer before any image."""
        _authorize(request)
        spec = _parse(request)
        fault = self.faults.take(PROVIDER, applicable, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, request)
        return spec, fault

    def _file_url(self, request: Request, image: bytes, fault: Fault | None) -> str:
        file_id = uuid.uuid4().hex
        if not is_fault(fault, "expired_url"):
            self._files.put(file_id, image)
        service = service_of(request.environ)
        scope = f"/s/{service}" if service else ""  # so a fault set for the service reaches the download too
        return f"{request.host_url.rstrip('/')}{scope}/{PROVIDER}/files/{file_id}.png"

    def _file(self, file_id: str) -> Response:
        image = self._files.get(file_id)
        if image is None:
            return _error(ApiError(404, "not_found", "file expired or never existed"))
        return Response(image, mimetype="image/png")


def _authorize(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing or malformed 'Authorization: Bearer <key>' header")
    return token.strip()


def _parse(request: Request) -> Spec:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "invalid_request", "'prompt' must be a non-empty string")
    seed = body.get("seed")
    if seed in (None, 0, -1, "random", ""):
        seed = random.randint(1, 2**31 - 1)
    width, height = body.get("width") or 1024, body.get("height") or 1024
    for name, value in (("seed", seed), ("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError(400, "invalid_request", f"'{name}' must be a non-negative integer, got {value!r}")
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise ApiError(400, "invalid_request", "width and height must be between 64 and 4096")
    model = body.get("model") or DEFAULT_MODEL
    return Spec(prompt=prompt, seed=seed, width=width, height=height, model=str(model))


def _answer(spec: Spec) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "model": spec.model, "seed": spec.seed}


def _safety_answer(fault: Fault | None) -> dict[str, Any]:
    """``{"safety": "passed"}``, or the block a safety fault asks for, with its message."""
    safety = SAFETY_FAULTS.get(fault.name, "passed") if fault else "passed"
    if safety == "passed":
        return {"safety": safety}
    return {"safety": safety, "error": {"code": "safety", "message": f"{safety.replace('_', ' ')} by the safety filter"}}


def _image(spec: Spec, fault: Fault | None) -> bytes:
    name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
    if is_fault(fault, "output_safety"):
        name = "black_image"  # the picture a safety filter leaves behind
    return image_for(name, spec.prompt, spec.seed, spec.model, spec.width, spec.height)


def _raise_for_fault(fault: Fault | None, request: Request) -> None:
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise ApiError(500, "internal_error", "internal server error")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise ApiError(429, "rate_limited", f"too many requests, retry in {seconds}s", {"Retry-After": str(seconds)})
    if name == "quota_exhausted":
        raise ApiError(402, "insufficient_credits", "your credit balance is 0")
    if name == "invalid_key":
        # echoes the key whole so the monitor's redaction is tested against the worst case
        raise ApiError(401, "invalid_api_key", f"invalid API key {_authorize(request)}")
    if name == "bad_request":
        raise ApiError(400, "invalid_request", "invalid request (emulated fault bad_request)")


def _nest(pointer: str, value: Any) -> dict[str, Any]:
    """``/data/0/b64_json`` + v → ``{"data": [{"b64_json": v}]}``."""
    for token in reversed(pointer[1:].split("/")):
        value = [None] * int(token) + [value] if token.isdigit() else {token: value}
    return value


def _error(error: ApiError) -> Response:
    body = {"error": {"code": error.code, "message": error.message}}
    return json_response(body, error.status, headers=error.headers)
