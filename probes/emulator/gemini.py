"""The Gemini API's image endpoints (docs/providers.md, gemini), faithful enough for ``google-genai``.

Routes (under ``/gemini/v1beta``): ``POST models/{model}:generateContent`` (Gemini image models),
``POST models/{model}:predict`` (Imagen), ``GET models/{model}``.  ``publishers/google/models/...``
answers the same as ``models/...``: google-genai 3.x only sends Imagen requests in its Vertex
form, whose ``:predict`` body is the same.  Auth is ``x-goog-api-key`` (or ``?key=``); errors
are google.rpc ``{"error": {"code", "message", "status", "details"}}``.  Resolutions follow the
documented size per aspect ratio; Gemini honours ``generationConfig.seed`` (none = a random one).
"""

from __future__ import annotations

import base64
import random
import re
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of
from probes.emulator.images import image_for
from probes.emulator.responses import is_fault, json_response

PROVIDER = "gemini"
GEMINI_SIZES = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184), "4:3": (1184, 864),
    "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344), "16:9": (1344, 768), "21:9": (1536, 672),
}
IMAGEN_SIZES = {"1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408), "16:9": (1408, 768)}
GEMINI_MODEL = re.compile(r"^gemini-[\w.-]*image[\w.-]*$")
IMAGEN_MODEL = re.compile(r"^imagen-[\w.-]+$")
REQUEST_KEYS = {"contents", "generationConfig", "safetySettings", "systemInstruction", "tools", "toolConfig",
                "cachedContent", "model"}
GENERATION_CONFIG_KEYS = {"responseModalities", "imageConfig", "seed", "temperature", "topP", "topK", "candidateCount",
                          "maxOutputTokens", "stopSequences", "responseMimeType", "thinkingConfig", "presencePenalty",
                          "frequencyPenalty", "responseLogprobs", "logprobs", "mediaResolution", "speechConfig"}
ERROR_TYPES = "type.googleapis.com/google.rpc."
#: the emulator echoes the key in its invalid-key message (the real API does not) to test redaction
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key. (key: {key})"
PREPAID_MESSAGE = ("Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects "
                   "to manage your project and billing.")


class RpcError(Exception):
    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = {"error": {"code": code, "message": message, "status": status, **({"details": details} if details else {})}}


class GeminiEmulator:
    BASE_PATH = "/v1beta"

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop

    def handle(self, request: Request, path: str) -> Response:
        try:
            match = re.fullmatch(r"/v1beta/(?:publishers/google/)?models/([^/:]+)(?::(\w+))?", path)
            if match is None:
                raise RpcError(404, "NOT_FOUND", f"Method not found: {request.method} {path}")
            model, method = match.groups()
            key = _authorize(request)
            if request.method == "GET" and method is None:
                return self._describe(request, model, key)
            if request.method == "POST" and method in ("generateContent", "predict"):
                return self._generate(request, model, method, key)
            raise RpcError(404, "NOT_FOUND", f"Method not found: {request.method} {path}")
        except RpcError as exc:
            return json_response(exc.body, exc.code)

    def _describe(self, request: Request, model: str, key: str) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, key)
        imagen = _check_model(model, None)
        payload = {
            "name": f"models/{model}", "version": "001" if imagen else "2.0", "displayName": model,
            "description": "Emulated image generation model", "inputTokenLimit": 32768, "outputTokenLimit": 32768,
            "supportedGenerationMethods": ["predict"] if imagen else ["generateContent", "countTokens"],
        }
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))

    def _generate(self, request: Request, model: str, method: str, key: str) -> Response:
        imagen = _check_model(model, method)
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise RpcError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
        fault = self.faults.take(PROVIDER, set(FAULTS) - JOB_FAULTS - {"expired_url"}, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, key)
        payload = _predict(body, model, fault) if imagen else _generate_content(body, model, fault)
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))


def _generate_content(body: dict[str, Any], model: str, fault: Fault | None) -> dict[str, Any]:
    _unknown_fields(body, REQUEST_KEYS, "")
    config = body.get("generationConfig") or {}
    _unknown_fields(config, GENERATION_CONFIG_KEYS, "generation_config")
    texts = [part.get("text", "") for content in body.get("contents") or [] if isinstance(content, dict)
             for part in content.get("parts") or [] if isinstance(part, dict)]
    if not texts:
        raise RpcError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n")
    modalities = config.get("responseModalities") or ["TEXT"]
    if "IMAGE" not in modalities:
        raise RpcError(400, "INVALID_ARGUMENT", "Model does not support the requested response modalities: TEXT")
    ratio = (config.get("imageConfig") or {}).get("aspectRatio") or "1:1"
    width, height = _size(GEMINI_SIZES, ratio)
    prompt = " ".join(texts)
    usage = {"promptTokenCount": len(prompt.split()), "candidatesTokenCount": 1290,
             "totalTokenCount": len(prompt.split()) + 1290}
    meta = {"usageMetadata": usage, "modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    if is_fault(fault, "content_policy"):
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}} | meta
    if is_fault(fault, "output_safety"):
        return {"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0,
                                "finishMessage": "Unable to show the generated image. The image was filtered out "
                                                 "because it violated Google's Generative AI Prohibited Use policy."}]} | meta
    seed = config.get("seed")
    image = _image(fault, prompt, seed if isinstance(seed, int) and seed > 0 else None, model, width, height)
    parts: list[dict[str, Any]] = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode("ascii")}}]
    if "TEXT" in modalities:
        parts.insert(0, {"text": f"Here is an image of {prompt}"})
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}]} | meta


def _predict(body: dict[str, Any], model: str, fault: Fault | None) -> dict[str, Any]:
    _unknown_fields(body, {"instances", "parameters"}, "")
    instances = body.get("instances")
    prompt = instances[0].get("prompt") if isinstance(instances, list) and instances and isinstance(instances[0], dict) else None
    if not isinstance(prompt, str) or not prompt:
        raise RpcError(400, "INVALID_ARGUMENT", "Invalid instances: the prompt is missing.")
    parameters = body.get("parameters") or {}
    count = parameters.get("sampleCount", 4)
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise RpcError(400, "INVALID_ARGUMENT", f"sampleCount must be between 1 and 4, got {count}.")
    width, height = _size(IMAGEN_SIZES, parameters.get("aspectRatio") or "1:1")
    if is_fault(fault, "content_policy"):
        raise RpcError(400, "INVALID_ARGUMENT",
                       "Image generation failed with the following error: The prompt could not be submitted. This prompt "
                       "contains sensitive words that violate Google's Responsible AI practices. Try rephrasing the prompt. "
                       "Support codes: 42876398")
    if is_fault(fault, "output_safety"):
        if parameters.get("includeRaiReason"):
            return {"predictions": [{"raiFilteredReason": "Unable to show generated images. All images were filtered "
                                                          "out because they violated Vertex AI's usage guidelines. "
                                                          "Support codes: 58061214"}]}
        return {}
    first = random.randint(1, 2**31 - 1)
    predictions = [{"bytesBase64Encoded": base64.b64encode(_image(fault, prompt, first + i, model, width, height)).decode("ascii"),
                    "mimeType": "image/png"} for i in range(count)]
    return {"predictions": predictions}


def _image(fault: Fault | None, prompt: str, seed: int | None, model: str, width: int, height: int) -> bytes:
    name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
    if name == "wrong_size":
        height *= 2  # halved by image_for: a wrong aspect ratio, which is what a ratio-only check can see
    return image_for(name, prompt, seed if seed is not None else random.randint(1, 2**31 - 1), model, width, height)


def _size(table: dict[str, tuple[int, int]], ratio: Any) -> tuple[int, int]:
    if ratio not in table:
        raise RpcError(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio {ratio!r}. Supported: {', '.join(table)}.")
    return table[ratio]


def _unknown_fields(body: Any, known: set[str], where: str) -> None:
    if not isinstance(body, dict):
        raise RpcError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. '{where}' must be an object.")
    for name in body:
        if name not in known:
            at = f" at '{where}'" if where else ""
            raise RpcError(400, "INVALID_ARGUMENT", f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.',
                           [{"@type": ERROR_TYPES + "BadRequest",
                             "fieldViolations": [{"field": f"{where}.{name}".lstrip("."),
                                                  "description": f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'}]}])


def _check_model(model: str, method: str | None) -> bool:
    """True for Imagen; 404 for unknown models or the wrong method for the family."""
    imagen = bool(IMAGEN_MODEL.match(model))
    if not imagen and not GEMINI_MODEL.match(model):
        raise RpcError(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported for "
                                         f"{method or 'get'}. Call ListModels to see the list of available models and "
                                         "their supported methods.")
    if method is not None and (method == "predict") != imagen:
        raise RpcError(400, "INVALID_ARGUMENT", f"models/{model} does not support {method}.")
    return imagen


def _authorize(request: Request) -> str:
    key = request.headers.get("x-goog-api-key") or request.args.get("key") or ""
    if not key:
        raise RpcError(403, "PERMISSION_DENIED",
                       "Method doesn't allow unregistered callers (callers without established identity). "
                       "Please use API Key or other form of API consumer identity to call this API.")
    return key


def _raise_for_fault(fault: Fault | None, key: str) -> None:
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise RpcError(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                        "https://developers.generativeai.google/guide/troubleshooting")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise RpcError(429, "RESOURCE_EXHAUSTED",
                       "You exceeded your current quota, please check your plan and billing details.",
                       [{"@type": ERROR_TYPES + "QuotaFailure", "violations": [{
                           "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                           "quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "10"}]},
                        {"@type": ERROR_TYPES + "RetryInfo", "retryDelay": f"{seconds}s"}])
    if name == "quota_exhausted":
        raise RpcError(429, "RESOURCE_EXHAUSTED", PREPAID_MESSAGE)
    if name == "invalid_key":
        raise RpcError(400, "INVALID_ARGUMENT", INVALID_KEY_MESSAGE.format(key=key),
                       [{"@type": ERROR_TYPES + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                         "metadata": {"service": "generativelanguage.googleapis.com"}}])
    if name == "bad_request":
        raise RpcError(400, "INVALID_ARGUMENT", "Request contains an invalid argument. (emulated fault bad_request)")


SERVICE_DEFAULTS: dict[str, Any] = {"model": "gemini-2.5-flash-image"}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "slow": "ok",
    "content_policy": "content_filtered",
    "output_safety": "content_filtered",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "wrong_size": "bad_output",
    "bad_request": "client_error",
}
