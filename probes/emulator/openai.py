"""The OpenAI Images API (docs/providers.md, openai), faithful enough for the official SDK.

Routes (under ``/openai``): ``POST /v1/images/generations``, ``GET /v1/models`` and
``GET /files/<id>.png`` for ``response_format: url``.  Requests are validated like
the real API; errors have the real shape ``{"error": {"message", "type", "param",
"code"}}``.  Unlike the real API an extra body field ``seed`` is accepted, so
tests can ask for a given picture; without it every call draws a new one, as the real API does.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, JOB_FAULTS, REQUEST_FAULTS, Fault, FaultBoard, delay, service_of
from probes.emulator.images import image_for
from probes.emulator.jobs import Recent
from probes.emulator.responses import is_fault, json_response

PROVIDER = "openai"
MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000}
GPT_IMAGE_PROMPT_LIMIT = 32000
KNOWN_PARAMS = frozenset(
    {"prompt", "model", "n", "size", "quality", "response_format", "style", "user", "output_format",
     "output_compression", "background", "moderation", "stream", "partial_images", "seed"}
)
# per model family: the enumerated parameters it accepts and their values
DALLE2_CHOICES = {
    "size": ("256x256", "512x512", "1024x1024"),
    "quality": ("standard",),
    "response_format": ("url", "b64_json"),
}
DALLE3_CHOICES = {
    "size": ("1024x1024", "1792x1024", "1024x1792"),
    "quality": ("standard", "hd"),
    "response_format": ("url", "b64_json"),
    "style": ("vivid", "natural"),
}
GPT_IMAGE_CHOICES = {
    "size": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "quality": ("low", "medium", "high", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "background": ("transparent", "opaque", "auto"),
    "moderation": ("low", "auto"),
}
MAX_FILES = 64  # url-mode images kept in memory, oldest dropped first
#: faults of ``response_format: url`` only: the URL answers 404, or 403 with an object store's XML error
URL_FAULTS = frozenset({"expired_url", "expired_signature", "expired_signature_s3"})
#: what an object store answers for a signed URL that expired, as the real stores word it
SIGNATURE_ERRORS = {
    "expired_signature": (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
        "authenticate the request. Make sure the value of Authorization header is formed correctly including the "
        "signature.\nRequestId:{request_id}\nTime:{now}</Message><AuthenticationErrorDetail>Signed expiry time "
        "[{expired}] must be after signed start time [{started}]</AuthenticationErrorDetail></Error>"
    ),
    "expired_signature_s3": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message>'
        "<X-Amz-Expires>3600</X-Amz-Expires><Expires>{expired}</Expires><ServerTime>{now}</ServerTime>"
        "<RequestId>{request_id}</RequestId><HostId>emulator</HostId></Error>"
    ),
}


class ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code, **(extra or {})}}
        self.headers = headers or {}


@dataclass(frozen=True)
class ImageRequest:
    model: str
    prompt: str
    n: int
    width: int
    height: int
    response_format: str | None  # None for GPT-image (always base64)
    quality: str
    output_format: str
    background: str
    style: str
    seed: int

    @property
    def gpt_image(self) -> bool:
        return self.response_format is None


#: what a service needs to talk to this emulator (used by examples and the cross-provider tests)
SERVICE_DEFAULTS: dict[str, Any] = {"model": "dall-e-3"}
#: the outcome each emulated fault must produce (image-quality faults are scoring's to judge)
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "slow": "ok",
    "content_policy": "content_filtered",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "wrong_size": "bad_output",
    "bad_request": "client_error",
    "lowres_image": "degraded_quality",
}


class OpenAIEmulator:
    BASE_PATH = "/v1"

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._files: Recent[bytes] = Recent(MAX_FILES)
        self._expired: Recent[str] = Recent(MAX_FILES)  # file id -> the signature fault its URL shows
        self._routes = Map(
            [
                Rule("/v1/images/generations", methods=["POST"], endpoint="generate"),
                Rule("/v1/models", methods=["GET"], endpoint="models"),
                Rule("/files/<file_id>.png", methods=["GET"], endpoint="file"),
            ]
        )

    def handle(self, request: Request, path: str) -> Response:
        request_id = f"req_{uuid.uuid4().hex}"
        try:
            endpoint, args = self._routes.bind("emulator").match(path, method=request.method)
            if endpoint == "file":
                return self._file(args["file_id"], request_id)
            response = self._generate(request) if endpoint == "generate" else self._models(request)
        except (NotFound, MethodNotAllowed):
            response = _error_response(ApiError(404, f"Invalid URL ({request.method} {path})"))
        except ApiError as exc:
            response = _error_response(exc)
        response.headers["x-request-id"] = request_id
        return response

    # -- endpoints ----------------------------------------------------------------------

    def _generate(self, request: Request) -> Response:
        api_key = _authorize(request)
        spec = _parse_generation(request)
        applicable = set(FAULTS) - JOB_FAULTS - (URL_FAULTS if spec.response_format != "url" else set())
        fault = self.faults.take(PROVIDER, applicable, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, api_key, spec)
        data = [self._image_item(request, spec, index, fault) for index in range(spec.n)]
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        if spec.gpt_image:
            payload.update(
                background="opaque" if spec.background == "auto" else spec.background,
                output_format=spec.output_format,
                quality="medium" if spec.quality == "auto" else spec.quality,
                size=f"{spec.width}x{spec.height}",
                usage=_usage(spec),
            )
        return json_response(payload, malformed=is_fault(fault, "malformed_json"))

    def _models(self, request: Request) -> Response:
        api_key = _authorize(request)
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        _raise_for_fault(fault, api_key, None)
        models = [{"id": model, "object": "model", "created": 1698785189, "owned_by": "system"} for model in MODELS]
        return json_response({"object": "list", "data": models}, malformed=is_fault(fault, "malformed_json"))

    def _file(self, file_id: str, request_id: str) -> Response:
        expired = self._expired.get(file_id)
        if expired is not None:
            now = time.time()
            body = SIGNATURE_ERRORS[expired].format(
                request_id=request_id, now=_http_date(now), expired=_http_date(now - 3600), started=_http_date(now - 7200))
            return Response(body, 403, mimetype="application/xml")
        image = self._files.get(file_id)
        if image is None:
            return Response(
                "<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code></Error>", 404, mimetype="application/xml"
            )
        return Response(image, mimetype="image/png")

    # -- images -------------------------------------------------------------------------

    def _image_item(self, request: Request, spec: ImageRequest, index: int, fault: Fault | None) -> dict[str, Any]:
        image = _image_bytes(spec, spec.seed + index, fault)
        item: dict[str, Any] = {}
        if spec.response_format == "url":
            file_id = uuid.uuid4().hex
            if fault is not None and fault.name in SIGNATURE_ERRORS:
                self._expired.put(file_id, fault.name)
            elif not is_fault(fault, "expired_url"):
                self._store(file_id, image)
            # signed like the real blob URLs (st/se: validity, sig: signature); the emulator does not check them
            signature = uuid.uuid4().hex
            item["url"] = f"{request.host_url}{PROVIDER}/files/{file_id}.png?se={int(time.time()) + 3600}&sp=r&sig={signature}"
        else:
            item["b64_json"] = base64.b64encode(image).decode("ascii")
        if spec.model == "dall-e-3":
            item["revised_prompt"] = f"A detailed, carefully composed image of {spec.prompt}"
        return item

    def _store(self, file_id: str, image: bytes) -> None:
        self._files.put(file_id, image)


def _image_bytes(spec: ImageRequest, seed: int, fault: Fault | None) -> bytes:
    name = fault.name if fault is not None and fault.name in IMAGE_FAULTS else None
    factor = int(fault.params.get("factor", 4)) if fault is not None else 4
    return image_for(name, spec.prompt, seed, spec.model, spec.width, spec.height, fmt=spec.output_format, style=spec.style,
                     factor=factor)


def _http_date(epoch: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))


def _usage(spec: ImageRequest) -> dict[str, Any]:
    text_tokens = max(1, len(spec.prompt.split()))
    output_tokens = 1056 * spec.n
    return {
        "input_tokens": text_tokens,
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + output_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
    }


# -- request checks -----------------------------------------------------------------------


def _authorize(request: Request) -> str:
    """The bearer token, or a 401 like the real API's."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not header:
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "Incorrect API key provided. Use Authorization: Bearer YOUR_KEY.", code="invalid_api_key")
    return token


def _parse_generation(request: Request) -> ImageRequest:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    body = {key: value for key, value in body.items() if value is not None}
    for name in body:
        if name not in KNOWN_PARAMS:
            raise ApiError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    prompt = body.get("prompt")
    if prompt is None:
        raise ApiError(400, "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, str):
        raise ApiError(400, f"Invalid type for 'prompt': expected a string, but got {type(prompt).__name__} instead.",
                       param="prompt", code="invalid_type")
    model = body.get("model", "dall-e-2")
    if model not in MODELS and not (isinstance(model, str) and model.startswith("gpt-image")):
        raise ApiError(400, f"Invalid value: '{model}'. Supported values are: {', '.join(MODELS)}.",
                       param="model", code="invalid_value")
    gpt_image = not model.startswith("dall-e")
    limit = GPT_IMAGE_PROMPT_LIMIT if gpt_image else PROMPT_LIMITS[model]
    if not 1 <= len(prompt) <= limit:
        raise ApiError(400, f"Invalid 'prompt': expected a string of 1 to {limit} characters, got {len(prompt)}.",
                       param="prompt", code="string_above_max_length" if prompt else "empty_string")
    choices = GPT_IMAGE_CHOICES if gpt_image else DALLE3_CHOICES if model == "dall-e-3" else DALLE2_CHOICES
    for name in ("size", "quality", "response_format", "style", "output_format", "background", "moderation"):
        if name not in body:
            continue
        if name not in choices:
            raise ApiError(400, f"Unknown parameter: '{name}'. It is not supported with model '{model}'.",
                           param=name, code="unknown_parameter")
        if body[name] not in choices[name]:
            raise ApiError(400, f"Invalid value: '{body[name]}'. Supported values are: "
                           f"{', '.join(repr(v) for v in choices[name])}.", param=name, code="invalid_value")
    n = _integer(body, "n", 1, 1, 1 if model == "dall-e-3" else 10)
    if "output_compression" in body and not gpt_image:
        raise ApiError(400, "Unknown parameter: 'output_compression'.", param="output_compression", code="unknown_parameter")
    _integer(body, "output_compression", 100, 0, 100)
    if body.get("stream"):
        raise ApiError(400, "The emulator does not stream; call without stream.", param="stream", code="unsupported_value")
    size = body.get("size", "auto" if gpt_image else "1024x1024")
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    return ImageRequest(
        model=model,
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        response_format=None if gpt_image else body.get("response_format", "url"),
        quality=body.get("quality", "auto" if gpt_image else "standard"),
        output_format=body.get("output_format", "png"),
        background=body.get("background", "auto"),
        style=body.get("style", "vivid" if model == "dall-e-3" else "default"),
        seed=_integer(body, "seed", random.randint(1, 2**31 - 1), 0, 2**32 - 1),  # like the real API: a new picture each call
    )


def _integer(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type")
    if not low <= value <= high:
        raise ApiError(400, f"Invalid '{name}': must be between {low} and {high}, got {value}.",
                       param=name, code="integer_out_of_range")
    return value


# -- faults ---------------------------------------------------------------------------------


def _raise_for_fault(fault: Fault | None, api_key: str, spec: ImageRequest | None) -> None:
    """Turn an error fault into the error the real API sends for it."""
    if fault is None:
        return
    name = fault.name
    if name == "server_error":
        raise ApiError(500, "The server had an error while processing your request. Sorry about that!", type="server_error")
    if name == "rate_limited":
        seconds = fault.params["retry_after"]
        raise ApiError(
            429,
            f"Rate limit reached for images per minute. Please try again in {seconds}s.",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000), "x-ratelimit-remaining-requests": "0"},
        )
    if name == "quota_exhausted":
        raise ApiError(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    if name == "invalid_key":
        # The real API masks the key it echoes; the emulator echoes it whole so the
        # monitor's redaction is tested against the worst case.
        raise ApiError(
            401,
            f"Incorrect API key provided: {api_key}. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    if name == "bad_request":
        raise ApiError(400, "Invalid request (emulated fault bad_request).", code="invalid_value")
    if name in ("content_policy", "output_safety") and spec is not None:
        if spec.gpt_image:
            stage = "input" if name == "content_policy" else "output"
            raise ApiError(
                400,
                "Your request was rejected by the safety system. If you believe this is an error, contact us.",
                type="image_generation_user_error",
                code="moderation_blocked",
                extra={"moderation_details": {"moderation_stage": stage, "categories": ["violence"]}},
            )
        raise ApiError(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may contain text that is "
            "not allowed by our safety system.",
            code="content_policy_violation",
        )


def _error_response(error: ApiError) -> Response:
    return json_response(error.body, error.status, headers=error.headers)
