"""The fal.ai queue API (docs/providers.md, fal), faithful enough for the official ``fal_client``.

Routes (under ``/fal``, the service's ``base_url`` in place of ``https://queue.fal.run``):
``POST /<model id>`` (e.g. ``/fal-ai/flux/schnell``) submits; the answer's URLs drop the
model's sub-path, as the real queue's do: ``GET /<owner>/<alias>/requests/<id>/status``,
``GET /<owner>/<alias>/requests/<id>`` (the result), ``PUT .../cancel``.  Output images are
served from ``/files/<id>.<ext>``.  A request is ``IN_QUEUE`` for ``QUEUE_S``, ``IN_PROGRESS``
for ``RUN_S``, then ``COMPLETED``.  Errors are ``{"detail": ...}``; every answer carries
``x-fal-request-id``.  Requests live in memory, newest ``MAX_JOBS`` kept.
"""

from __future__ import annotations

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
from probes.emulator.responses import json_response

PROVIDER = "fal"
QUEUE_S = 0.15
RUN_S = 0.3
MAX_JOBS = 256
SEED_MAX = 2**32 - 1
MODELS = {  # endpoint id -> default image_size
    "fal-ai/flux/schnell": "landscape_4_3",
    "fal-ai/flux/dev": "landscape_4_3",
    "fal-ai/flux-pro/v1.1": "landscape_4_3",
}
NAMED_SIZES = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024), "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}
CONTENT_POLICY_MESSAGE = "The content could not be processed because it contained material flagged by a content checker."

#: what a service needs to talk to this emulator, besides allow_private_network (cross-provider tests)
SERVICE_DEFAULTS: dict[str, Any] = {"model": "fal-ai/flux/schnell"}
#: fault -> the outcome the adapter (plus scoring) must produce (``slow`` with ``seconds`` well inside
#: the deadline); noise/blur/model swap are left to quality scoring
FAULT_OUTCOMES: dict[str, str] = dict(JOB_FAULT_OUTCOMES)


class FalError(Exception):
    """An error answer ``{"detail": ...}``."""

    def __init__(self, status: int, detail: Any, *, error_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.body: dict[str, Any] = {"detail": detail} | ({"error_type": error_type} if error_type else {})
        self.headers = headers or {}


@dataclass
class Job:
    id: str
    model: str
    input: dict[str, Any]
    width: int
    height: int
    fmt: str
    seed: int
    fault: Fault | None
    root: str  # URL of the emulator's /fal (with any /s/<service> scope)
    created: float = field(default_factory=time.monotonic)
    canceled: bool = False
    result: dict[str, Any] | None = None

    def fault_is(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    def status(self, now: float) -> str:
        elapsed = now - self.created
        queue_s, run_s = timeline(self.fault, QUEUE_S, RUN_S)
        if elapsed < queue_s and not self.canceled:
            return "IN_QUEUE"
        if (elapsed < queue_s + run_s or self.fault_is("stuck_job")) and not self.canceled:
            return "IN_PROGRESS"
        return "COMPLETED"

    @property
    def base(self) -> str:
        owner, alias = self.model.split("/")[:2]
        return f"{self.root}/{owner}/{alias}/requests/{self.id}"

    def error(self) -> tuple[str, str] | None:
        """(error, error_type) of a failed request."""
        if self.canceled:
            return "Request was cancelled", "request_cancelled"
        if self.fault_is("content_policy"):
            return CONTENT_POLICY_MESSAGE, "content_policy_violation"
        if self.fault_is("job_failure"):
            return "Internal Server Error", "internal_server_error"
        return None


class FalEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._jobs: Recent[Job] = Recent(MAX_JOBS)
        self._files: Recent[tuple[bytes, str]] = Recent(MAX_JOBS)
        self._routes = Map(
            [
                Rule("/files/<file_id>", methods=["GET"], endpoint="file"),
                Rule("/<owner>/<alias>/requests/<job_id>/status", methods=["GET"], endpoint="status"),
                Rule("/<owner>/<alias>/requests/<job_id>/cancel", methods=["PUT"], endpoint="cancel"),
                Rule("/<owner>/<alias>/requests/<job_id>", methods=["GET"], endpoint="result"),
                Rule("/<path:model>", methods=["POST"], endpoint="submit"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        request_id = str(uuid.uuid4())  # a new request's id; answers about a request carry its id
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            request_id = args.get("job_id", request_id)
            if endpoint == "file":
                return self._file(args["file_id"])
            key = _authorize(request, args.get("model") or f"{args['owner']}/{args['alias']}")
            if endpoint == "submit":
                response = self._submit(request, path, key, args["model"], request_id)
            else:
                response = self._job_answer(request, endpoint, key, args["job_id"])
        except (NotFound, MethodNotAllowed):
            response = _error(FalError(404, f"Path {path} not found"))
        except FalError as exc:
            response = _error(exc)
        response.headers.setdefault("x-fal-request-id", request_id)
        return response

    # -- endpoints ----------------------------------------------------------------------

    def _submit(self, request: Request, path: str, key: str, model: str, request_id: str) -> Response:
        if model not in MODELS:
            raise FalError(404, f"Application '{model.split('/')[1] if '/' in model else model}' not found")
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise FalError(422, [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
        fault = self.faults.take(PROVIDER, set(FAULTS), service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, key)
        width, height, fmt, seed = _validate(model, body)
        root = request.host_url.rstrip("/") + request.path[: len(request.path) - len(path)]
        job = Job(request_id, model, body, width, height, fmt, seed, fault, root)
        self._jobs.put(job.id, job)
        answer = {"status": "IN_QUEUE", "request_id": job.id, "response_url": job.base,
                  "status_url": f"{job.base}/status", "cancel_url": f"{job.base}/cancel", "queue_position": 0}
        return json_response(answer, malformed=job.fault_is("malformed_json"))

    def _job_answer(self, request: Request, endpoint: str, key: str, job_id: str) -> Response:
        # request-level faults hit every queue request (and so the adapter's health check)
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS - {"malformed_json"}, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, key)
        job = self._jobs.get(job_id)
        if job is None or job.fault_is("unknown_job"):
            raise FalError(404, f"Request {job_id} not found")
        status = job.status(time.monotonic())
        if endpoint == "cancel":
            if status == "COMPLETED":
                return json_response({"status": "ALREADY_COMPLETED"}, 400)
            job.canceled = True
            return json_response({"status": "CANCELLATION_REQUESTED"}, 202)
        if endpoint == "status":
            return self._status(request, job, status)
        if status != "COMPLETED":
            raise FalError(400, "Request is still in progress")
        error = job.error()
        if error is not None:
            if error[1] == "content_policy_violation":
                raise FalError(422, [{"loc": ["body", "prompt"], "msg": error[0], "type": error[1],
                                      "url": "https://docs.fal.ai/errors#content_policy_violation"}])
            raise FalError(500, error[0], error_type=error[1], headers={"x-fal-error-type": error[1]})
        return json_response(self._result(job))

    def _status(self, request: Request, job: Job, status: str) -> Response:
        with_logs = request.args.get("logs", "0").lower() in ("1", "true")
        answer: dict[str, Any] = {"status": status, "request_id": job.id, "response_url": job.base,
                                  "status_url": f"{job.base}/status", "cancel_url": f"{job.base}/cancel",
                                  "logs": [] if with_logs else None, "metrics": {}}
        if status == "IN_QUEUE":
            answer["queue_position"] = 0
        elif status == "IN_PROGRESS" and with_logs:
            answer["logs"] = [{"message": "Generating image", "level": "INFO", "source": "user",
                               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}]
        else:
            answer["metrics"] = {"inference_time": RUN_S}
            error = job.error()
            if error is not None:
                answer["error"], answer["error_type"] = error
        return json_response(answer, 200 if status == "COMPLETED" else 202)

    def _file(self, file_id: str) -> Response:
        stored = self._files.get(file_id)
        if stored is None:
            return Response('{"detail": "File not found"}', 404, mimetype="application/json")
        return Response(stored[0], mimetype=stored[1])

    # -- results --------------------------------------------------------------------------

    def _result(self, job: Job) -> dict[str, Any]:
        if job.result is None:
            name = job.fault.name if job.fault is not None and job.fault.name in IMAGE_FAULTS else None
            if job.fault_is("output_safety"):
                name = "black_image"  # the safety checker's placeholder
            image = image_for(name, job.input.get("prompt", ""), job.seed, job.model, job.width, job.height, fmt=job.fmt)
            file_id = f"{uuid.uuid4().hex}.{'jpg' if job.fmt == 'jpeg' else job.fmt}"
            if not job.fault_is("expired_url"):
                self._files.put(file_id, (image, _mime(image, job.fmt)))
            job.result = {
                "images": [{"url": f"{job.root}/files/{file_id}", "width": job.width, "height": job.height,
                            "content_type": f"image/{job.fmt}"}],
                "timings": {"inference": RUN_S},
                "seed": job.seed,
                "has_nsfw_concepts": [job.fault_is("output_safety")],
                "prompt": job.input.get("prompt", ""),
            }
        return job.result


# -- request checks -----------------------------------------------------------------------


def _authorize(request: Request, app: str) -> str:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if not request.headers.get("Authorization"):
        raise FalError(401, f"Cannot access application '{app}'. Authentication is required to access this application.")
    if scheme.lower() != "key" or not key.strip() or " " in key.strip():
        raise FalError(401, "Invalid Key authorization header format. Expected 'Key <key_id>:<key_secret>'.")
    return key.strip()


def _validate(model: str, body: dict[str, Any]) -> tuple[int, int, str, int]:
    """(width, height, format, seed) of a valid input; a 422 with a pydantic-style list otherwise."""
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise _invalid("prompt", "Field required", "missing")
    size = body.get("image_size", MODELS[model])
    if isinstance(size, str):
        if size not in NAMED_SIZES:
            raise _invalid("image_size", f"Input should be one of {', '.join(NAMED_SIZES)}", "enum")
        width, height = NAMED_SIZES[size]
    elif isinstance(size, dict):
        for name in ("width", "height"):
            value = size.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 14142:
                raise _invalid(f"image_size.{name}", "Input should be an integer between 1 and 14142", "int_type")
        width, height = size["width"], size["height"]
    else:
        raise _invalid("image_size", "Input should be a valid dictionary or a named size", "union_tag_invalid")
    fmt = body.get("output_format", "jpeg")
    if fmt not in ("jpeg", "png"):
        raise _invalid("output_format", "Input should be 'jpeg' or 'png'", "enum")
    count = body.get("num_images", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 4:
        raise _invalid("num_images", "Input should be less than or equal to 4", "less_than_equal")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _invalid("seed", "Input should be a valid integer", "int_type")
    if seed is None or seed <= 0:
        seed = random.randint(1, SEED_MAX)  # noqa: S311 - a fresh picture, not a secret
    return width, height, fmt, seed


def _invalid(where: str, message: str, kind: str) -> FalError:
    return FalError(422, [{"loc": ["body", *where.split(".")], "msg": message, "type": kind}])


def _raise_for_fault(fault: Fault | None, key: str) -> None:
    """Turn a request-level fault into the answer the real queue sends for it."""
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise FalError(500, "Internal Server Error")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        # ❓ fal mostly queues instead of refusing; a refusal is a 429 like this one
        raise FalError(429, "Too many concurrent requests. Please retry later.", error_type="rate_limited",
                       headers={"Retry-After": str(seconds)})
    if name == "quota_exhausted":
        raise FalError(403, "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.")
    if name == "invalid_key":
        # The real queue does not echo keys; the emulator does, to test the monitor's redaction.
        raise FalError(401, f"Invalid key: {key}")
    if name == "bad_request":
        raise _invalid("num_inference_steps", "Input should be less than or equal to 12 (emulated fault bad_request)",
                       "less_than_equal")


# -- answers --------------------------------------------------------------------------------


def _mime(data: bytes, fmt: str) -> str:
    """The type a CDN would label the file with: from its bytes, else from the requested format."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return f"image/{fmt}"


def _error(error: FalError) -> Response:
    return json_response(error.body, error.status, headers=error.headers)
