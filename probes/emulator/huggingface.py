"""Hugging Face Inference text-to-image (docs/providers.md, huggingface), enough for ``huggingface_hub.InferenceClient``.

Routes (under ``/huggingface``, so a service's ``base_url`` is ``.../huggingface/hf-inference/models``
like the router's): ``POST /hf-inference/models/{owner}/{name}`` answers raw image bytes, and
``GET`` on the same path answers the model's status (❓: the shape of the legacy ``/status``
endpoint).  Errors are ``{"error": ...}``.  Like the real service the emulator caches answers to
identical inputs unless the request says ``x-use-cache: false``; a cached answer is served
before any fault, which is exactly how a cache hides an outage.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of
from probes.emulator.images import image_for
from probes.emulator.jobs import Recent
from probes.emulator.responses import is_fault, json_response

PROVIDER = "huggingface"
PREFIX = "/hf-inference/models/"
MODELS = ("black-forest-labs/FLUX.1-schnell", "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-3-medium-diffusers")
# no safety filter in the API itself, no URLs, no jobs
GENERATION_FAULTS = frozenset(FAULTS) - JOB_FAULTS - {"expired_url", "content_policy", "output_safety"}
SEED_MAX = 2**32 - 1
CACHE_SIZE = 32

SERVICE_DEFAULTS: dict[str, Any] = {"model": "black-forest-labs/FLUX.1-schnell"}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "slow": "ok",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "wrong_size": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "bad_request": "client_error",
}


class ApiError(Exception):
    def __init__(self, status: int, error: str | list[str], *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(str(error))
        self.status = status
        self.body = {"error": error, **extra}
        self.headers = headers or {}


class HuggingFaceEmulator:
    BASE_PATH = "/hf-inference/models"

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._cache: Recent[tuple[bytes, str]] = Recent(CACHE_SIZE)

    def handle(self, request: Request, path: str) -> Response:
        try:
            model = path[len(PREFIX):].strip("/") if path.startswith(PREFIX) else ""
            if not model or request.method not in ("GET", "POST"):
                raise ApiError(404, "Not Found")
            api_key = _authorize(request)
            if model not in MODELS:
                raise ApiError(404, f"Model {model} does not exist")
            response = self._generate(request, model, api_key) if request.method == "POST" else self._status(request, model, api_key)
        except ApiError as exc:
            response = json_response(exc.body, exc.status, headers=exc.headers)
        response.headers["x-request-id"] = uuid.uuid4().hex[:24]
        return response

    def _generate(self, request: Request, model: str, api_key: str) -> Response:
        prompt, width, height, seed = _parse(request)
        use_cache = request.headers.get("x-use-cache", "true").lower() != "false"
        fmt = "png" if "image/png" in request.headers.get("Accept", "") else "jpeg"
        key = json.dumps([model, request.get_json(silent=True), fmt], sort_keys=True)
        if use_cache:
            cached = self._cache.get(key)
            if cached is not None:
                return Response(cached[0], mimetype=cached[1])
        fault = self.faults.take(PROVIDER, GENERATION_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, api_key, model)
        if is_fault(fault, "malformed_json"):
            return json_response({"generated_image": "x" * 64}, malformed=True)
        name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
        image = image_for(name, prompt, seed, model, width, height, fmt=fmt)
        mimetype = f"image/{fmt}"
        if use_cache:
            self._cache.put(key, (image, mimetype))
        return Response(image, mimetype=mimetype, headers={"x-compute-type": "gpu"})

    def _status(self, request: Request, model: str, api_key: str) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, api_key, model)
        status = {"loaded": True, "state": "Loaded", "compute_type": "gpu", "framework": "diffusers"}
        return json_response(status, malformed=is_fault(fault, "malformed_json"))


def _authorize(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "Invalid username or password.")
    return token


def _parse(request: Request) -> tuple[str, int, int, int]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str) or not body["inputs"].strip():
        raise ApiError(400, ["Error in `inputs`: field required"])
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(400, ["Error in `parameters`: value is not a valid dict"])
    width, height = parameters.get("width", 1024), parameters.get("height", 1024)
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 64 <= value <= 2048 or value % 8:
            raise ApiError(400, [f"Error in `parameters.{name}`: must be a multiple of 8 between 64 and 2048"])
    seed = parameters.get("seed")
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed <= SEED_MAX):
        raise ApiError(400, [f"Error in `parameters.seed`: must be an integer between 0 and {SEED_MAX}"])
    return body["inputs"], width, height, random.randint(1, SEED_MAX) if seed is None else seed


def _raise_for_fault(fault: Fault | None, api_key: str, model: str) -> None:
    if fault is None:
        return
    name = fault.name
    if name == "server_error":  # the cold start: HF's most common 5xx
        raise ApiError(503, f"Model {model} is currently loading", estimated_time=20.0)
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise ApiError(429, "Rate limit reached. You reached free usage limit (reset hourly). Please subscribe to a "
                       "plan at https://huggingface.co/pricing to use the API at this rate",
                       headers={"retry-after": str(seconds)})
    if name == "quota_exhausted":
        raise ApiError(402, "You have exceeded your monthly included credits for Inference Providers. Subscribe to "
                       "PRO to get 20x more monthly included credits.")
    if name == "invalid_key":
        # echoed whole (the real API does not) so the monitor's redaction is tested on the worst case
        raise ApiError(401, f"Invalid credentials in Authorization header: {api_key}")
    if name == "bad_request":
        raise ApiError(400, ["Error in `parameters.num_inference_steps`: ensure this value is less than or equal to 50"])
