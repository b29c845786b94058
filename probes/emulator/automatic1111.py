"""AUTOMATIC1111 / Forge web UI API (docs/providers.md, automatic1111): txt2img, the checkpoint list and progress.

Routes (under ``/automatic1111``, which stands for the server root ``http://host:7860``):
``POST /sdapi/v1/txt2img``, ``GET /sdapi/v1/sd-models``, ``GET /sdapi/v1/progress``.  Like a
server started with ``--api-auth``, HTTP Basic credentials are checked when sent (any user
with a non-empty password passes); like one without it, requests with no credentials pass
too.  Errors have the API's shapes: ``{"error", "detail", "body", "errors"}`` from its
exception handler, FastAPI's ``{"detail"}`` for auth and unknown routes.  Every answer carries
``X-Process-Time``.  A1111 has no rate limit, credits or safety filter, so those faults do not
apply.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of
from probes.emulator.images import image_for
from probes.emulator.responses import is_fault, json_response

PROVIDER = "automatic1111"
CHECKPOINTS = (
    {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly", "hash": "6ce0161689",
     "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
     "filename": "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "config": None},
    {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0", "hash": "31e35c80fc",
     "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
     "filename": "/models/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None},
)
SAMPLERS = ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE", "DDIM", "UniPC")
SEED_MAX = 2**32 - 1
GENERATION_FAULTS = frozenset(FAULTS) - JOB_FAULTS - {
    "rate_limited", "quota_exhausted", "content_policy", "output_safety", "expired_url"}
HEALTH_FAULTS = REQUEST_FAULTS - {"rate_limited", "quota_exhausted"}

SERVICE_DEFAULTS: dict[str, Any] = {"options": {"username": "genstatus"}}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
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
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}

    @classmethod
    def exception(cls, status: int, name: str, detail: str, errors: str) -> ApiError:
        """What A1111's exception handler answers for an exception raised in an API route."""
        return cls(status, {"error": name, "detail": detail, "body": "", "errors": errors})


class Automatic1111Emulator:
    BASE_PATH = ""

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop

    def handle(self, request: Request, path: str) -> Response:
        began = time.monotonic()
        try:
            route = (request.method, path.rstrip("/"))
            if route == ("POST", "/sdapi/v1/txt2img"):
                response = self._txt2img(request)
            elif route in (("GET", "/sdapi/v1/sd-models"), ("GET", "/sdapi/v1/progress")):
                response = self._cheap(request, route[1])
            else:
                raise ApiError(404, {"detail": "Not Found"})
        except ApiError as exc:
            response = json_response(exc.body, exc.status, headers=exc.headers)
        response.headers["X-Process-Time"] = f"{time.monotonic() - began:.4f}"
        return response

    def _txt2img(self, request: Request) -> Response:
        _authorize(request)
        body = _parse(request)
        fault = self.faults.take(PROVIDER, GENERATION_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault)
        checkpoint = _checkpoint(body)
        seed = body["seed"] if body["seed"] >= 0 else random.randint(0, SEED_MAX)
        name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
        image = image_for(name, body["prompt"], seed, checkpoint["model_name"], body["width"], body["height"])
        info = {
            "prompt": body["prompt"], "all_prompts": [body["prompt"]], "negative_prompt": body["negative_prompt"],
            "seed": seed, "all_seeds": [seed], "subseed": seed + 1, "width": body["width"], "height": body["height"],
            "sampler_name": body["sampler_name"], "cfg_scale": body["cfg_scale"], "steps": body["steps"],
            "batch_size": 1, "sd_model_name": checkpoint["model_name"], "sd_model_hash": checkpoint["hash"],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "version": "v1.10.1",
        }
        payload = {"images": [base64.b64encode(image).decode("ascii")], "parameters": body, "info": json.dumps(info)}
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))

    def _cheap(self, request: Request, path: str) -> Response:
        _authorize(request)
        fault = self.faults.take(PROVIDER, HEALTH_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault)
        if path.endswith("sd-models"):
            payload: Any = list(CHECKPOINTS)
        else:
            payload = {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                       "state": {"skipped": False, "interrupted": False, "job": "", "job_count": 0, "job_no": 0,
                                 "sampling_step": 0, "sampling_steps": 0}}
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))


def _authorize(request: Request) -> None:
    """Basic credentials are checked when present (``--api-auth``); none at all is a server without it."""
    header = request.headers.get("Authorization")
    if header is None:
        return
    scheme, _, encoded = header.partition(" ")
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, colon, password = "", "", ""
    if scheme.lower() != "basic" or not user or not colon or not password:
        raise _unauthorized()


def _unauthorized() -> ApiError:
    return ApiError(401, {"detail": "Incorrect username or password"}, {"WWW-Authenticate": "Basic"})


def _parse(request: Request) -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(422, {"detail": [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]})
    settings: dict[str, Any] = {
        "prompt": "", "negative_prompt": "", "seed": -1, "width": 512, "height": 512, "steps": 20,
        "cfg_scale": 7.0, "sampler_name": "Euler a", "batch_size": 1, "n_iter": 1, "override_settings": {},
    } | body
    for name in ("seed", "width", "height", "steps"):
        if not isinstance(settings[name], int) or isinstance(settings[name], bool):
            raise ApiError(422, {"detail": [{"loc": ["body", name], "msg": "value is not a valid integer",
                                             "type": "type_error.integer"}]})
    if settings["sampler_name"] not in SAMPLERS:
        raise ApiError.exception(404, "HTTPException", "Sampler not found", "404: Sampler not found")
    return settings


def _checkpoint(body: dict[str, Any]) -> dict[str, Any]:
    wanted = (body.get("override_settings") or {}).get("sd_model_checkpoint")
    for checkpoint in CHECKPOINTS:
        if wanted in (None, checkpoint["title"], checkpoint["model_name"]):
            return checkpoint
    return CHECKPOINTS[0]  # an unknown name keeps the loaded checkpoint (❓ what A1111 does)


def _raise_for_fault(fault: Fault | None) -> None:
    if fault is None:
        return
    if fault.name == "server_error":
        raise ApiError.exception(500, "OutOfMemoryError", "", "CUDA out of memory. Tried to allocate 2.00 GiB "
                                 "(GPU 0; 7.79 GiB total capacity; 5.12 GiB already allocated)")
    if fault.name == "invalid_key":
        raise _unauthorized()
    if fault.name == "bad_request":
        raise ApiError.exception(404, "HTTPException", "Sampler not found", "404: Sampler not found")
