"""The same-origin rule, for every adapter that follows URLs or ids a provider's answer names.

A loopback "provider" answers each adapter's submit with polling/result/cancel URLs (or ids
shaped like URLs) that point at a second loopback server on another origin.  The probe must
never send that server a request (so never the key), and must end with a classified outcome.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome
from probes.registry import adapter_class
from tests.providers.helpers import probe, serve

API_KEY = "origin-test-key-0123456789abcdef"
CANARY = CanaryConfig(id="c", prompt="a red apple", size="64x64", seed=7)
HOSTILE_SEEN: list[dict] = []


def hostile_app(environ, start_response):
    request = Request(environ)
    HOSTILE_SEEN.append({"path": request.full_path, "headers": dict(request.headers)})
    return Response(json.dumps({"status": "succeeded"}), content_type="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def hostile():
    yield from serve(hostile_app)


@pytest.fixture(scope="module")
def provider(hostile):
    """Answers every submit with URLs (or URL-shaped ids) on the hostile server's origin."""

    def app(environ, start_response):
        request = Request(environ)
        path = request.path
        answer: object = {}
        status = 200
        if path.startswith("/replicate/"):
            status, answer = 201, {"id": "p1", "status": "starting",
                                   "urls": {"get": f"{hostile}/v1/predictions/p1", "cancel": f"{hostile}/v1/predictions/p1/cancel"}}
        elif path.startswith("/fal/"):
            answer = {"request_id": "r1", "status_url": f"{hostile}/requests/r1/status",
                      "response_url": f"{hostile}/requests/r1", "cancel_url": f"{hostile}/requests/r1/cancel"}
        elif path.startswith("/bfl/"):
            answer = {"id": "t1", "polling_url": f"{hostile}/v1/get_result?id=t1"}
        elif path.startswith("/http/"):
            status, answer = 202, {"job": {"url": f"{hostile}/jobs/1"}, "status": "queued"}
        elif path == "/comfyui/prompt":
            answer = {"prompt_id": f"{hostile}/steal"}
        elif path == "/comfyui/queue":
            answer = {"queue_pending": [], "queue_running": []}
        elif path.startswith("/comfyui/history/"):
            answer = {f"{hostile}/steal": {"status": {"status_str": "error", "messages": []}, "outputs": {}}}
        elif path == "/midjourney_proxy/submit/imagine":
            answer = {"code": 1, "description": "ok", "result": f"{hostile}/steal"}
        elif path.startswith("/midjourney_proxy/task/"):
            answer = {"id": "x", "status": "FAILURE", "failReason": "no"}
        return Response(json.dumps(answer), status=status, content_type="application/json")(environ, start_response)

    yield from serve(app)


HTTP_JOB = {"path": "/generate", "body": {"prompt": "{prompt}"}, "image": {"pointer": "/image", "encoding": "url"},
            "poll": {"url_pointer": "/job/url", "status_pointer": "/status", "queued": ["queued"], "success": ["succeeded"]}}
SERVICES = {
    "replicate": {"model": "owner/model"},
    "fal": {},
    "bfl": {},
    "http": {"options": HTTP_JOB},
    "comfyui": {},
    "midjourney_proxy": {},
}


def service(provider_url: str, provider: str, **changes) -> ServiceConfig:
    fields = {"id": f"origin-{provider.replace('_', '-')}", "provider": provider, "base_url": f"{provider_url}/{provider}",
              "api_key": API_KEY, "canaries": [CANARY.id], "timeout": timedelta(seconds=3), "allow_private_network": True}
    return ServiceConfig(**(fields | SERVICES[provider] | changes))


@pytest.mark.parametrize("provider_key", sorted(SERVICES))
def test_a_url_on_another_origin_is_never_requested(provider, hostile, provider_key):
    HOSTILE_SEEN.clear()
    svc = service(provider, provider_key)
    result = probe(adapter_class(provider_key), svc, CANARY, score=False)
    assert HOSTILE_SEEN == []  # no request at all, so no key either
    assert result.outcome not in (Outcome.OK, Outcome.PROBE_ERROR), result.error_detail
    assert API_KEY not in (result.error_detail or "")
    if provider_key in ("replicate", "fal", "bfl", "http"):  # they follow URLs the answer names
        assert result.outcome is Outcome.BAD_OUTPUT
        assert f"on another origin ({hostile}) refused: credentials stay on {provider}" in result.error_detail


def test_allowed_origins_opens_one_origin_explicitly(provider, hostile):
    HOSTILE_SEEN.clear()
    svc = service(provider, "http", allowed_origins=[hostile])
    result = probe(adapter_class("http"), svc, CANARY, score=False)
    assert [seen["path"] for seen in HOSTILE_SEEN] == ["/jobs/1?"]  # polled there, as configured
    assert HOSTILE_SEEN[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert result.outcome is Outcome.BAD_OUTPUT and "no image at /image" in result.error_detail


@pytest.mark.parametrize("allowed", [[], ["http://169.254.169.254"]], ids=["not-allowed", "allowed-but-private"])
def test_a_metadata_address_is_never_polled(provider, allowed):
    svc = service(provider, "http", allow_private_network=False, allowed_origins=allowed,
                  options=HTTP_JOB | {"poll": HTTP_JOB["poll"] | {"url_pointer": "/meta"}})
    # the provider (on loopback) is the configured base_url: its own origin is trusted as configured
    answer_with_metadata_url = {"meta": "http://169.254.169.254/latest/meta-data/iam", "status": "queued"}

    def app(environ, start_response):
        return Response(json.dumps(answer_with_metadata_url), status=202, content_type="application/json")(environ, start_response)

    for base in serve(app):
        result = probe(adapter_class("http"), svc.model_copy(update={"base_url": base}), CANARY, score=False)
        assert result.outcome is Outcome.BAD_OUTPUT, result.error_detail
        expected = "non-public address 169.254.169.254" if allowed else "on another origin (http://169.254.169.254) refused"
        assert expected in result.error_detail
        assert result.latency_ms["total"] < 1000  # refused, not tried until a connect timeout
