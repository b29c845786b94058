"""The generic error-status classification every adapter refines with its own body rules."""

from __future__ import annotations

import httpx
import pytest

from monitor.enums import Outcome
from probes.answers import body_text, classify_status, json_object, object_or_empty
from probes.base import ProbeFailure


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    "status, outcome",
    [(401, Outcome.AUTH_ERROR), (402, Outcome.AUTH_ERROR), (403, Outcome.AUTH_ERROR), (404, Outcome.CLIENT_ERROR),
     (429, Outcome.RATE_LIMITED), (500, Outcome.SERVER_ERROR), (503, Outcome.SERVER_ERROR), (302, Outcome.BAD_OUTPUT)],
)
def test_generic_outcomes(status, outcome):
    assert classify_status(answer(status), "d") == (outcome, "d")


def test_402_can_be_a_client_error_and_retry_after_is_noted():
    assert classify_status(answer(402), "d", auth_statuses=(401, 403))[0] is Outcome.CLIENT_ERROR
    assert classify_status(answer(429, **{"retry-after": "7"}), "d") == (Outcome.RATE_LIMITED, "d (Retry-After: 7s)")
    assert classify_status(answer(429), "d", retry_after=0) == (Outcome.RATE_LIMITED, "d (Retry-After: 0s)")
    assert classify_status(answer(429), "d") == (Outcome.RATE_LIMITED, "d")


def test_bodies():
    assert object_or_empty(b"<html>") == {} and object_or_empty(b"[1]") == {} and object_or_empty(b'{"a": 1}') == {"a": 1}
    assert body_text(b"  ") == "(empty body)" and body_text(b" x ") == "x"
    with pytest.raises(ProbeFailure, match="expected a JSON object, got list") as failure:
        json_object(b"[]", answer(200, **{"x-request-id": "r1"}), "x-request-id")
    assert failure.value.outcome is Outcome.BAD_OUTPUT and failure.value.request_id == "r1"


HOSTILE_ERROR_BODIES = {
    "deeply nested": b"[" * 60_000,
    "too many containers": b"[" + b"{}," * 30_000 + b"{}]",
}


@pytest.mark.parametrize("provider", ["openai", "stability", "replicate", "fal", "bfl", "gemini", "huggingface",
                                      "midjourney_proxy", "automatic1111", "comfyui", "http"])
@pytest.mark.parametrize("body", sorted(HOSTILE_ERROR_BODIES))
def test_a_hostile_error_body_keeps_the_status_outcome(provider, body):
    """Error bodies too deep or too big to parse are not parsed, and the status still decides: a 503 stays a
    server error (a RecursionError used to turn it into bad_output, or into our own probe_error)."""
    from monitor.config import ServiceConfig
    from probes.registry import adapter_class

    adapter_type = adapter_class(provider)
    options = {"path": "/generate", "body": {"prompt": "{prompt}"}, "image": {"pointer": "/image"},
               "error_pointer": "/error/message"} if provider == "http" else {}
    service = ServiceConfig(id="s", provider=provider, canaries=["c"], base_url="https://api.example.com",
                            model="owner/model", options=options)
    adapter = adapter_type(service)
    failure = adapter.failure(httpx.Response(503, request=httpx.Request("POST", "https://api.example.com/x")),
                              HOSTILE_ERROR_BODIES[body][:64 * 1024])
    assert failure.outcome is Outcome.SERVER_ERROR, failure.detail


def test_loads_refuses_what_is_too_deep_or_too_big():
    from probes.answers import UnsafeJSON, loads

    for raw in HOSTILE_ERROR_BODIES.values():
        with pytest.raises(UnsafeJSON):
            loads(raw * 4)
    assert loads('{"a": [1, 2]}') == {"a": [1, 2]}
