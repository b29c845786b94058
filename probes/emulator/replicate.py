"""The Replicate predictions API (docs/providers.md, replicate), faithful enough for the official SDK.

Routes (under ``/replicate``, the service's ``base_url``): ``POST /v1/models/<owner>/<name>/predictions``,
``POST /v1/predictions`` (by version), ``GET /v1/predictions/<id>``, ``POST /v1/predictions/<id>/cancel``,
``GET /v1/account``, and ``GET /delivery/<file>/<name>`` for output files.  A prediction is
``starting`` for ``QUEUE_S``, ``processing`` for ``RUN_S``, then terminal; ``Prefer: wait[=N]``
holds the create request until then (at most N s).  Errors are problem details
``{"title", "detail", "status"}``.  Jobs live in memory, newest ``MAX_JOBS`` kept.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

PROVIDER = "replicate"
QUEUE_S = 0.15
RUN_S = 0.3
MAX_WAIT_S = 60
MAX_JOBS = 256
SEED_MAX = 2**32 - 1
FLUX_RATIOS = {"1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
               "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
               "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536)}


@dataclass(frozen=True)
class Model:
    size_input: str  # "aspect_ratio" or "width_height"
    single_output: bool  # a bare URL instead of a list of URLs
    formats: tuple[str, ...]

    @property
    def default_format(self) -> str:
        return self.formats[0]


MODELS = {
    "black-forest-labs/flux-schnell": Model("aspect_ratio", False, ("webp", "jpg", "png")),
    "black-forest-labs/flux-1.1-pro": Model("aspect_ratio", True, ("webp", "jpg", "png")),
    "stability-ai/sdxl": Model("width_height", False, ("png",)),
}
#: version id -> model; versions are stable fake hashes of the model name
VERSIONS = {hashlib.sha256(name.encode()).hexdigest(): name for name in MODELS}
VERSION_OF = {name: version for version, name in VERSIONS.items()}

#: what a service needs to talk to this emulator, besides allow_private_network (cross-provider tests)
SERVICE_DEFAULTS: dict[str, Any] = {"model": "black-forest-labs/flux-schnell"}
#: fault -> the outcome the adapter (plus scoring) must produce (``slow`` with ``seconds`` well inside
#: the deadline); noise/blur/model swap are left to quality scoring
FAULT_OUTCOMES: dict[str, str] = dict(JOB_FAULT_OUTCOMES)


class Problem(Exception):
    """A problem-details error answer."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"title": title, "detail": detail, "status": status, **(extra or {})}
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
    urls_base: str
    files_base: str
    created: float = field(default_factory=time.monotonic)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    canceled: float | None = None
    output: Any = None

    def fault_is(self, name: str) -> bool:
        return self.fault is not None and self.fault.name == name

    def status(self, now: float) -> str:
        if self.canceled is not None:
            return "canceled"
        elapsed = now - self.created
        queue_s, run_s = timeline(self.fault, QUEUE_S, RUN_S)
        if elapsed < queue_s:
            return "starting"
        if elapsed < queue_s + run_s or self.fault_is("stuck_job"):
            return "processing"
        failing = ("job_failure", "content_policy", "output_safety")
        return "failed" if self.fault is not None and self.fault.name in failing else "succeeded"


class ReplicateEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._jobs: Recent[Job] = Recent(MAX_JOBS)
        self._files: Recent[tuple[bytes, str]] = Recent(MAX_JOBS)
        self._routes = Map(
            [
                Rule("/v1/models/<owner>/<name>/predictions", methods=["POST"], endpoint="create_by_model"),
                Rule("/v1/predictions", methods=["POST"], endpoint="create_by_version"),
                Rule("/v1/predictions/<job_id>", methods=["GET"], endpoint="get"),
                Rule("/v1/predictions/<job_id>/cancel", methods=["POST"], endpoint="cancel"),
                Rule("/v1/account", methods=["GET"], endpoint="account"),
                Rule("/delivery/<file_id>/<filename>", methods=["GET"], endpoint="file"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            if endpoint == "file":
                return self._file(args["file_id"])
            token = _authorize(request)
            if endpoint == "account":
                return self._account(request, token)
            if endpoint in ("create_by_model", "create_by_version"):
                return self._create(request, path, token, args)
            return self._prediction_answer(request, token, args["job_id"], cancel=endpoint == "cancel")
        except (NotFound, MethodNotAllowed):
            return _problem(Problem(404, "Not found", "The requested resource could not be found."))
        except Problem as exc:
            return _problem(exc)

    # -- endpoints ----------------------------------------------------------------------

    def _create(self, request: Request, path: str, token: str, args: Mapping[str, Any]) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("input", {}), dict):
            raise Problem(400, "Invalid request", "The request body must be a JSON object with an 'input' object.")
        if "owner" in args:
            model = f"{args['owner']}/{args['name']}"
            if model not in MODELS:
                raise Problem(404, "Not found", f"Model {model} not found or you don't have permission to run it.")
        else:
            model = VERSIONS.get(str(body.get("version", "")).rpartition(":")[2], "")
            if not model:
                raise Problem(422, "Invalid version or not permitted",
                              "The specified version does not exist (or perhaps you don't have permission to use it?)")
        fault = self.faults.take(PROVIDER, set(FAULTS), service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, token)
        inputs = body.get("input", {})
        width, height, fmt, seed = _validate(MODELS[model], inputs)
        root = request.host_url.rstrip("/") + request.path[: len(request.path) - len(path)]
        job = Job(uuid.uuid4().hex[:26], model, inputs, width, height, fmt, seed, fault,
                  urls_base=f"{root}/v1/predictions", files_base=f"{root}/delivery")
        self._jobs.put(job.id, job)
        wait = _prefer_wait(request.headers.get("Prefer", ""))
        headers = {}
        if wait and not job.fault_is("unknown_job"):
            headers["Preference-Applied"] = f"wait={wait}"
            deadline = job.created + wait
            while job.status(time.monotonic()) not in ("succeeded", "failed", "canceled") and time.monotonic() < deadline:
                if self.stop.wait(min(0.05, max(deadline - time.monotonic(), 0))):
                    break
        response = json_response(self._view(job), 201, malformed=job.fault_is("malformed_json"))
        response.headers.update(headers)
        return response

    def _prediction_answer(self, request: Request, token: str, job_id: str, *, cancel: bool) -> Response:
        # request-level faults hit polls too, so an outage mid-job shows
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS - {"malformed_json"}, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, token)
        job = self._jobs.get(job_id)
        if job is None or job.fault_is("unknown_job"):
            raise Problem(404, "Not found", "Not found.")
        if cancel and job.status(time.monotonic()) in ("starting", "processing"):
            job.canceled = time.monotonic()
        return json_response(self._view(job))

    def _account(self, request: Request, token: str) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, token)
        account = {"type": "user", "username": "genstatus", "name": "genstatus emulator", "github_url": None}
        return json_response(account, malformed=is_fault(fault, "malformed_json"))

    def _file(self, file_id: str) -> Response:
        stored = self._files.get(file_id)
        if stored is None:
            return Response("Not Found", 404, mimetype="text/plain")
        return Response(stored[0], mimetype=stored[1])

    # -- predictions --------------------------------------------------------------------

    def _view(self, job: Job) -> dict[str, Any]:
        """The prediction as the API shows it now."""
        status = job.status(time.monotonic())
        started = job.created_at + timedelta(seconds=QUEUE_S) if status != "starting" else None
        completed = None
        if status in ("succeeded", "failed"):
            completed = job.created_at + timedelta(seconds=QUEUE_S + RUN_S)
        elif status == "canceled":
            completed = job.created_at + timedelta(seconds=job.canceled - job.created)  # type: ignore[operator]
        view: dict[str, Any] = {
            "id": job.id,
            "model": job.model,
            "version": VERSION_OF[job.model],
            "input": job.input,
            "logs": "" if status == "starting" else f"Using seed: {job.seed}\n",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": status,
            "created_at": _iso(job.created_at),
            "started_at": _iso(started),
            "completed_at": _iso(completed),
            "urls": {
                "get": f"{job.urls_base}/{job.id}",
                "cancel": f"{job.urls_base}/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }
        if status == "succeeded":
            view["output"] = self._output(job)
            view["metrics"] = {"predict_time": RUN_S, "total_time": QUEUE_S + RUN_S}
        elif status == "failed":
            view["error"] = _failure_message(job)
        return view

    def _output(self, job: Job) -> Any:
        if job.output is None:
            name = job.fault.name if job.fault is not None and job.fault.name in IMAGE_FAULTS else None
            width, height = job.width, job.height
            if name == "wrong_size" and MODELS[job.model].size_input == "aspect_ratio":
                height *= 2  # halved by image_for: an aspect-ratio model's wrong size is a wrong aspect ratio
            image = image_for(name, job.input.get("prompt", ""), job.seed, job.model, width, height,
                              fmt="jpeg" if job.fmt == "jpg" else job.fmt)
            file_id = uuid.uuid4().hex
            if not job.fault_is("expired_url"):
                self._files.put(file_id, (image, _mime(image, job.fmt)))
            url = f"{job.files_base}/{file_id}/out-0.{job.fmt}"
            job.output = url if MODELS[job.model].single_output else [url]
        return job.output


def _failure_message(job: Job) -> str:
    if job.fault_is("content_policy"):
        return "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
    if job.fault_is("output_safety"):
        return "NSFW content detected. Try running it again, or try a different prompt."
    return "CUDA error: an illegal memory access was encountered (emulated fault job_failure)"


# -- request checks -----------------------------------------------------------------------


def _authorize(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not request.headers.get("Authorization"):
        raise Problem(401, "Unauthenticated", "You did not pass an authentication token")
    if scheme.lower() not in ("bearer", "token") or not token.strip() or " " in token.strip():
        raise Problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    return token.strip()


def _validate(model: Model, inputs: dict[str, Any]) -> tuple[int, int, str, int]:
    """(width, height, format, seed) of a valid input; 422 like Cog's validation otherwise."""
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _invalid("input", "prompt is required")
    seed = inputs.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _invalid("input.seed", "Invalid type. Expected: integer, given: " + type(seed).__name__)
    if seed is None or seed <= 0:
        seed = random.randint(1, SEED_MAX)  # noqa: S311 - a fresh picture, not a secret
    fmt = inputs.get("output_format", model.default_format)
    if fmt not in model.formats:
        raise _invalid("input.output_format", f"input.output_format must be one of the following: {', '.join(model.formats)}")
    if model.size_input == "aspect_ratio":
        ratio = inputs.get("aspect_ratio", "1:1")
        if ratio not in FLUX_RATIOS:
            raise _invalid("input.aspect_ratio", f"input.aspect_ratio must be one of the following: {', '.join(FLUX_RATIOS)}")
        width, height = FLUX_RATIOS[ratio]
    else:
        width, height = inputs.get("width", 1024), inputs.get("height", 1024)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 2048:
                raise _invalid(f"input.{name}", f"input.{name} must be an integer between 64 and 2048")
    return width, height, fmt, seed


def _invalid(fieldname: str, description: str) -> Problem:
    return Problem(422, "Input validation failed", f"- {fieldname}: {description}\n",
                   extra={"invalid_fields": [{"type": "invalid", "field": fieldname, "description": description}]})


def _prefer_wait(header: str) -> int:
    """Seconds to hold a create request: ``Prefer: wait`` = 60, ``wait=N`` = N (1..60), else 0."""
    match = re.search(r"(?:^|[,;\s])wait(?:=(\d+))?\b", header)
    if match is None:
        return 0
    return min(int(match.group(1)), MAX_WAIT_S) if match.group(1) else MAX_WAIT_S


def _raise_for_fault(fault: Fault | None, token: str) -> None:
    """Turn a request-level fault into the answer the real API sends for it."""
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise Problem(500, "Internal Server Error", "An unexpected error occurred (emulated fault server_error).")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise Problem(429, "Request was throttled", f"Request was throttled. Expected available in {seconds} seconds.",
                      headers={"Retry-After": str(seconds), "ratelimit-remaining": "0", "ratelimit-reset": str(seconds)},
                      extra={"retry_after": seconds})
    if name == "quota_exhausted":
        raise Problem(402, "Insufficient credit",
                      "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
                      "to purchase credit. Once you purchase credit, please wait a few minutes before trying again.")
    if name == "invalid_key":
        # The real API does not echo tokens; the emulator does, to test the monitor's redaction.
        raise Problem(401, "Unauthenticated", f"You did not pass a valid authentication token: {token}")
    if name == "bad_request":
        raise _invalid("input.num_outputs", "input.num_outputs must be less than or equal to 4 (emulated fault bad_request)")


# -- answers --------------------------------------------------------------------------------


def _mime(data: bytes, fmt: str) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[8:12] == b"WEBP":
        return "image/webp"
    return {"jpg": "image/jpeg"}.get(fmt, f"image/{fmt}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z") if value else None


def _problem(error: Problem) -> Response:
    return json_response(error.body, error.status, headers=error.headers, mimetype="application/problem+json")
