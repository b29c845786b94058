"""Stability AI (docs/providers.md, stability): v2beta Stable Image and v1 text-to-image, plus the balance check.

Routes (under ``/stability``, so a service's ``base_url`` is ``.../stability``):
``POST /v2beta/stable-image/generate/{core|ultra|sd3}`` (multipart/form-data only),
``POST /v1/generation/{engine}/text-to-image`` (JSON), ``GET /v1/user/balance`` and
``GET /v1/engines/list``.  Errors have the real shapes: v2beta ``{"id", "name", "errors"}``,
v1 ``{"id", "name", "message"}``.  v2beta picks the resolution from ``aspect_ratio``
(the SDXL-style ~1 MP sizes below, for every endpoint; the real Ultra is larger).
"""

from __future__ import annotations

import base64
import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of
from probes.emulator.images import image_for
from probes.emulator.responses import is_fault, json_response

PROVIDER = "stability"
V2_ENDPOINTS = ("core", "ultra", "sd3")
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium")
V1_ENGINES = ("stable-diffusion-xl-1024-v1-0", "stable-diffusion-v1-6")
ASPECT_SIZES = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832), "5:4": (1088, 896),
    "2:3": (832, 1216), "4:5": (896, 1088), "9:16": (768, 1344), "9:21": (640, 1536),
}
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
SEED_MAX = 4294967294
CREDITS = 42.5
GENERATION_FAULTS = frozenset(FAULTS) - JOB_FAULTS - {"expired_url"}

SERVICE_DEFAULTS: dict[str, Any] = {"model": "core", "options": {"api": "v2beta"}}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "slow": "ok",
    "invalid_key": "auth_error",
    "content_policy": "content_filtered",
    "output_safety": "content_filtered",
    "malformed_json": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "wrong_size": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "bad_request": "client_error",
}


class ApiError(Exception):
    """A Stability error answer in the v2beta or the v1 shape."""

    def __init__(self, status: int, name: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message
        self.headers = headers or {}

    def response(self, request_id: str, v1: bool) -> Response:
        body: dict[str, Any] = {"id": request_id, "name": self.name}
        body |= {"message": self.message} if v1 else {"errors": [self.message]}
        return json_response(body, self.status, headers=self.headers)


@dataclass(frozen=True)
class Spec:
    """One generation request, either API."""

    v1: bool
    model: str
    prompt: str
    seed: int
    width: int
    height: int
    fmt: str
    want_json: bool


class StabilityEmulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._routes = Map(
            [
                Rule("/v2beta/stable-image/generate/<endpoint>", methods=["POST"], endpoint="v2beta"),
                Rule("/v1/generation/<engine>/text-to-image", methods=["POST"], endpoint="v1"),
                Rule("/v1/user/balance", methods=["GET"], endpoint="balance"),
                Rule("/v1/engines/list", methods=["GET"], endpoint="engines"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        request_id = uuid.uuid4().hex
        v1 = not path.startswith("/v2beta/")
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            api_key = _authorize(request)
            if endpoint in ("balance", "engines"):
                response = self._account(request, endpoint, api_key)
            else:
                spec = _parse_v2beta(request, args["endpoint"]) if endpoint == "v2beta" else _parse_v1(request, args["engine"])
                response = self._generate(request, spec, api_key)
        except (NotFound, MethodNotAllowed):
            response = ApiError(404, "not_found", f"{request.method} {path} not found").response(request_id, v1)
        except ApiError as exc:
            response = exc.response(request_id, v1)
        response.headers["x-request-id"] = request_id
        return response

    def _generate(self, request: Request, spec: Spec, api_key: str) -> Response:
        fault = self.faults.take(PROVIDER, GENERATION_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, api_key)
        name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
        width, height = spec.width, spec.height
        if name == "wrong_size" and not spec.v1:
            height //= 2  # v2beta chooses the pixels itself: a wrong size is a wrong aspect ratio
        finish_reason = "SUCCESS"
        if is_fault(fault, "output_safety"):
            name, finish_reason = "blurred_image", "CONTENT_FILTERED"  # flagged output comes back blurred
        image = image_for(name, spec.prompt, spec.seed, spec.model, width, height, fmt=spec.fmt)
        if spec.want_json or is_fault(fault, "malformed_json"):
            encoded = base64.b64encode(image).decode("ascii")
            if spec.v1:
                payload: Any = {"artifacts": [{"base64": encoded, "seed": spec.seed, "finishReason": finish_reason}]}
            else:
                payload = {"image": encoded, "finish_reason": finish_reason, "seed": spec.seed}
            return json_response(payload, malformed=is_fault(fault, "malformed_json"))
        reason_header, seed_header = ("Finish-Reason", "Seed") if spec.v1 else ("finish-reason", "seed")
        return Response(
            image, mimetype=FORMATS[spec.fmt], headers={reason_header: finish_reason, seed_header: str(spec.seed)}
        )

    def _account(self, request: Request, endpoint: str, api_key: str) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        if endpoint == "balance" and is_fault(fault, "quota_exhausted"):
            return json_response({"credits": 0})  # the balance endpoint reports an empty account, it does not fail
        _raise_for_fault(fault, api_key)
        if endpoint == "balance":
            payload: Any = {"credits": CREDITS}
        else:
            payload = [{"id": engine, "name": engine, "description": engine, "type": "PICTURE"} for engine in V1_ENGINES]
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))


# -- requests ---------------------------------------------------------------------------------


def _authorize(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "unauthorized", "authorization: invalid or missing")
    return token


def _parse_v2beta(request: Request, endpoint: str) -> Spec:
    if endpoint not in V2_ENDPOINTS:
        raise ApiError(404, "not_found", f"endpoint {endpoint!r} not found")
    if request.mimetype != "multipart/form-data":
        raise ApiError(400, "bad_request", "content-type: must be multipart/form-data")
    form = request.form
    want_json = _accept(request, ("image/",))
    prompt = form.get("prompt", "")
    if not prompt.strip():
        raise ApiError(400, "bad_request", "prompt: cannot be empty")
    ratio = form.get("aspect_ratio", "1:1")
    if ratio not in ASPECT_SIZES:
        raise ApiError(400, "bad_request", f"aspect_ratio: must be one of {', '.join(ASPECT_SIZES)}")
    fmt = form.get("output_format", "png")
    allowed = ("png", "jpeg") if endpoint == "sd3" else tuple(FORMATS)
    if fmt not in allowed:
        raise ApiError(400, "bad_request", f"output_format: must be one of {', '.join(allowed)}")
    model = endpoint
    if endpoint == "sd3":
        model = form.get("model", SD3_MODELS[0])
        if model not in SD3_MODELS:
            raise ApiError(400, "bad_request", f"model: must be one of {', '.join(SD3_MODELS)}")
    width, height = ASPECT_SIZES[ratio]
    seed = _seed(form.get("seed", "0"))
    return Spec(False, model, prompt, seed, width, height, fmt, want_json)


def _parse_v1(request: Request, engine: str) -> Spec:
    if engine not in V1_ENGINES:
        raise ApiError(404, "not_found", f"engine {engine!r} not found")
    want_json = _accept(request, ("image/png",), default_json=True)
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body: must be a JSON object")
    prompts = body.get("text_prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, dict) and p.get("text") for p in prompts):
        raise ApiError(400, "invalid_prompts", "text_prompts: must be a non-empty list of {text, weight}")
    if body.get("samples", 1) != 1:
        raise ApiError(400, "invalid_samples", "samples: the emulator generates one sample")
    width, height = body.get("width", 512), body.get("height", 512)
    if not all(isinstance(v, int) and 128 <= v <= 2048 and v % 64 == 0 for v in (width, height)):
        raise ApiError(400, "invalid_dimensions", "width and height must be multiples of 64 between 128 and 2048")
    positive = " ".join(p["text"] for p in prompts if p.get("weight", 1) > 0)
    return Spec(True, engine, positive, _seed(body.get("seed", 0)), width, height, "png", want_json)


def _accept(request: Request, image_types: tuple[str, ...], *, default_json: bool = False) -> bool:
    """True when the client asked for JSON; a missing Accept header means the API's default."""
    accept = request.headers.get("Accept", "").strip()
    if not accept or accept == "*/*":
        return default_json
    if accept.startswith("application/json"):
        return True
    if accept.startswith(image_types):
        return False
    raise ApiError(400, "bad_request", f"accept: must be application/json or {' or '.join(image_types)}")


def _seed(value: Any) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", "seed: must be an integer") from None
    if not 0 <= seed <= SEED_MAX:
        raise ApiError(400, "bad_request", f"seed: must be between 0 and {SEED_MAX}")
    return seed or random.randint(1, SEED_MAX)  # 0 = a random seed, reported back


# -- faults -----------------------------------------------------------------------------------


def _raise_for_fault(fault: Fault | None, api_key: str) -> None:
    """Turn an error fault into Stability's own error (v2beta wording; v1 gets the same in ``message``)."""
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise ApiError(500, "internal_error", "An unexpected server error has occurred, please try again later.")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise ApiError(
            429,
            "rate_limit_exceeded",
            "You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed "
            f"out for {seconds} seconds.",
            headers={"retry-after": str(seconds)},
        )
    if name == "quota_exhausted":
        raise ApiError(402, "payment_required", "You lack sufficient credits to make this request. Please purchase "
                       "more credits at https://platform.stability.ai/account/credits and try again.")
    if name == "invalid_key":
        # echoed whole (the real API does not) so the monitor's redaction is tested on the worst case
        raise ApiError(401, "unauthorized", f"authorization: invalid API key {api_key}")
    if name == "content_policy":
        raise ApiError(403, "content_moderation", "Your request was flagged by our content moderation system, as a "
                       "result your request was denied and you were not charged.")
    if name == "bad_request":
        raise ApiError(400, "bad_request", "aspect_ratio: invalid (emulated fault bad_request)")
