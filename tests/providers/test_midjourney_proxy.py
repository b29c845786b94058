"""The midjourney-proxy adapter against its emulator over loopback HTTP: codes, task states, faults."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeContext, SizeCheck
from probes.emulator.midjourney_proxy import FAULT_OUTCOMES, TASK_S
from probes.http import make_client
from probes.providers.midjourney_proxy import MidjourneyProxyAdapter
from tests.providers.helpers import run_with_runner, serve, with_

SECRET = "mj-secret-0123456789abcdef"
PROVIDER = "midjourney_proxy"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="mj-test", provider=PROVIDER, base_url=emulator.base_url(PROVIDER, service="mj-test"), api_key=SECRET,
        canaries=["still-life"], timeout=timedelta(seconds=3), allow_private_network=True,
    )


run = run_with_runner


def test_clean_run(service, canary):
    result = run(service, canary)
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height) == (1024, 1024)  # the 2x2 grid of 512-pixel tiles
    assert result.request_id.isdigit() and len(result.request_id) == 16
    assert result.model_version == "--v 7" and result.seed is None and result.http_status == 200
    phases = result.latency_ms
    assert phases["submit"] > 0 and phases["queue"] > 0 and phases["generation"] > 0 and phases["download"] > 0


def test_grid_of_another_ratio_passes_the_ratio_check(service):
    result = run(service, CanaryConfig(id="wide", prompt="a harbour at dawn", size="1536x1024"))
    assert result.outcome is Outcome.OK, result.error_detail
    assert abs(result.image_width / result.image_height - 1.5) < 0.03 and result.image_width > 1024


@pytest.mark.parametrize(
    "size, negative, options, prompt, check",
    [
        ("1024x768", None, {}, "p --ar 4:3", SizeCheck.ASPECT),
        ("auto", "text", {}, "p --no text", SizeCheck.NONE),
        ("1024x1024", None, {"aspect_ratio": False, "parameters": "--v 6.1 --fast"}, "p --v 6.1 --fast", SizeCheck.NONE),
        ("1024x1024", None, {"parameters": "--ar 2:3"}, "p --ar 2:3", SizeCheck.NONE),
    ],
)
def test_prompt(service, size, negative, options, prompt, check):
    canary = CanaryConfig(id="c", prompt="p", size=size, negative_prompt=negative)
    ctx = ProbeContext(service, canary, client=None)  # type: ignore[arg-type]
    assert MidjourneyProxyAdapter(with_(service, options=options)).prompt(ctx) == (prompt, check)


def test_secret_header_and_none_without_key(service):
    assert MidjourneyProxyAdapter(service).headers() == {"mj-api-secret": SECRET}
    assert MidjourneyProxyAdapter(with_(service, api_key=None)).headers() == {}


def test_missing_secret_is_auth_error(service, canary):
    result = run(with_(service, api_key=None), canary)
    assert result.outcome is Outcome.AUTH_ERROR and result.http_status == 401


TIMED = {fault for fault, outcome in FAULT_OUTCOMES.items() if outcome == "timeout"}


@pytest.mark.parametrize("fault", sorted(set(FAULT_OUTCOMES) - TIMED))
def test_fault_outcome(emulator, service, canary, fault):
    emulator.faults.set(PROVIDER, fault, service="mj-test", **({"seconds": 0.2} if fault == "slow" else {}))
    result = run(service, canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    assert SECRET not in (result.error_detail or "")


@pytest.mark.parametrize(
    "fault, text",
    [
        ("content_policy", "submit code 24: 可能包含敏感词 (bannedWord: apple)"),
        ("rate_limited", "submit code 23: 队列已满"),
        ("output_safety", "FAILURE: Request cancelled due to image filters"),
        ("job_failure", "FAILURE: Internal Error"),
    ],
)
def test_fault_details_keep_the_proxys_words(emulator, service, canary, fault, text):
    emulator.faults.set(PROVIDER, fault, service="mj-test")
    assert text in run(service, canary).error_detail


@pytest.mark.parametrize("fault", sorted(TIMED))
def test_deadline_faults_time_out_in_time(emulator, service, canary, fault):
    emulator.faults.set(PROVIDER, fault, service="mj-test")
    began = time.monotonic()
    result = run(with_(service, timeout=timedelta(seconds=2)), canary)
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3


def test_preview_url_is_not_trusted_before_success(emulator, service, canary):
    """A task stuck mid-progress shows a preview imageUrl; the adapter never takes it for the result."""
    emulator.faults.set(PROVIDER, "stuck_job")
    base = emulator.base_url(PROVIDER)
    submitted = httpx.post(f"{base}/submit/imagine", json={"prompt": "a red apple"}, headers={"mj-api-secret": "x"}).json()
    time.sleep(sum(TASK_S.values()) + 0.1)  # well past the point where a healthy task would have finished
    task = httpx.get(f"{base}/task/{submitted['result']}/fetch", headers={"mj-api-secret": "x"}).json()
    assert task["status"] == "IN_PROGRESS" and task["imageUrl"].endswith("preview.png")
    result = run(with_(service, timeout=timedelta(seconds=2)), canary)
    assert result.outcome is Outcome.TIMEOUT, (result.outcome, result.error_detail)


def test_unknown_task_is_an_empty_body(emulator):
    response = httpx.get(f"{emulator.base_url(PROVIDER)}/task/123/fetch", headers={"mj-api-secret": "x"})
    assert response.status_code == 200 and response.content == b""


def test_health_check(emulator, service):
    assert run(service, None, ProbeKind.HEALTH).outcome is Outcome.OK
    emulator.faults.set(PROVIDER, "server_error", service="mj-test")
    failed = run(service, None, ProbeKind.HEALTH)
    assert failed.outcome is Outcome.SERVER_ERROR and "Internal Server Error" in failed.error_detail
    emulator.faults.set(PROVIDER, "invalid_key", service="mj-test")
    assert run(service, None, ProbeKind.HEALTH).outcome is Outcome.AUTH_ERROR


# -- answers the emulator never gives --------------------------------------------------------------

ODD = {
    "no-account": {"code": 3, "description": "无可用的账号实例", "result": None, "properties": {}},
    "queued": None,
    "banned-task": {"id": "1", "status": "FAILURE", "failReason": "Banned prompt detected"},
    "bad-parameter": {"id": "1", "status": "FAILURE", "failReason": "[Invalid parameter] Unrecognized parameter(s): `--foo`"},
    "no-url": {"id": "1", "status": "SUCCESS", "imageUrl": None},
    "accounts-disabled": [{"id": "1", "enable": False}],
}


@Request.application
def odd_server(request: Request) -> Response:
    case = request.path.strip("/").split("/")[0]
    if request.path.endswith("/submit/imagine"):
        body = ODD[case] if case == "no-account" else {"code": 22, "description": "排队中，前面还有1个任务", "result": "1",
                                                       "properties": {"numberOfQueues": 1}}
    else:
        body = ODD[case]
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


@pytest.fixture(scope="module")
def odd_url():
    yield from serve(odd_server)


@pytest.mark.parametrize(
    "case, kind, outcome, text",
    [
        ("no-account", ProbeKind.CANARY, Outcome.SERVER_ERROR, "submit code 3: 无可用的账号实例"),
        ("banned-task", ProbeKind.CANARY, Outcome.CONTENT_FILTERED, "Banned prompt detected"),
        ("bad-parameter", ProbeKind.CANARY, Outcome.CLIENT_ERROR, "Invalid parameter"),
        ("no-url", ProbeKind.CANARY, Outcome.BAD_OUTPUT, "without an imageUrl"),
        ("accounts-disabled", ProbeKind.HEALTH, Outcome.SERVER_ERROR, "no enabled Discord account"),
    ],
)
def test_odd_answers(service, canary, odd_url, case, kind, outcome, text):
    odd = with_(service, base_url=f"{odd_url}/{case}")
    with make_client(odd) as client:
        result = MidjourneyProxyAdapter(odd).probe(ProbeContext(odd, canary, client), kind)
    assert result.outcome is outcome, result.error_detail
    assert text in result.error_detail
