"""The generic ``http`` adapter against the custom-generator emulator over real loopback HTTP."""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image

from monitor.config import CanaryConfig, Config, ConfigError, ServiceConfig, parse_config
from monitor.engine.runner import ProbeRunner
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeContext
from probes.emulator.http import FAULT_OUTCOMES, JOB_OPTIONS, SERVICE_DEFAULTS
from probes.http import make_client
from probes.providers.http import HTTPAdapter, HTTPOptions, render, resolve
from probes.registry import adapter_class, provider_issues

API_KEY = "gen-test-key-0123456789abcdef"
TIMEOUT_S = 2.5
CANARY = CanaryConfig(id="still-life", prompt="a red apple on a wooden table", size="512x512", seed=4242)
SYNC_BODY = {"prompt": "{prompt}", "seed": "{seed}", "width": "{width}", "height": "{height}"}
B64 = {"path": "/generate?at=/artifacts/0/base64", "body": SYNC_BODY, "image": {"pointer": "/artifacts/0/base64"},
       "model_pointer": "/model", "error_pointer": "/error/message",
       "content_filtered": {"pointer": "/safety", "values": ["blocked_prompt", "blocked_output"]}}
URL = {"path": "/generate/url", "body": SYNC_BODY, "image": {"pointer": "/image_url", "encoding": "url"}}
RAW = {"path": "/generate/raw", "body": SYNC_BODY, "image": {"raw": True},
       "content_filtered": {"header": "x-safety", "values": ["blocked_prompt", "blocked_output"]}}


def service(emulator, service_id: str, options=None, **changes) -> ServiceConfig:
    fields = copy.deepcopy(SERVICE_DEFAULTS) | ({"options": options} if options is not None else {})
    return ServiceConfig(
        id=service_id, provider="http", base_url=emulator.base_url("http", service=service_id),
        canaries=[CANARY.id], timeout=timedelta(seconds=TIMEOUT_S), allow_private_network=True,
        **({"api_key": API_KEY} | fields | changes),
    )


def run(svc: ServiceConfig, kind: ProbeKind = ProbeKind.CANARY):
    runner = ProbeRunner(Config(canaries=[CANARY], services=[svc]), region="test")
    try:
        return runner.run(svc, CANARY if kind is ProbeKind.CANARY else None, kind)
    finally:
        runner.close()


def probe_unscored(svc: ServiceConfig):
    """``adapter.probe`` without scoring, so the image is still there."""
    with make_client(svc) as client:
        return adapter_class(svc.provider)(svc).probe(ProbeContext(svc, CANARY, client, seed=CANARY.seed))


# -- clean runs in every mode ----------------------------------------------------------------


def test_job_mode_records_every_phase(emulator):
    result = probe_unscored(service(emulator, "job-clean"))
    assert result.outcome is Outcome.OK, result.error_detail
    assert Image.open(BytesIO(result.image)).size == (512, 512)
    assert result.model_version == "custom-gen-1" and result.seed == 4242
    assert result.request_id and result.http_status == 200
    assert all(result.latency_ms[p] > 0 for p in ("submit", "queue", "generation", "download", "total"))


@pytest.mark.parametrize("options", [B64, URL, RAW], ids=["base64", "url", "raw"])
def test_synchronous_modes(emulator, options):
    result = probe_unscored(service(emulator, "sync-clean", options, model="my-model"))
    assert result.outcome is Outcome.OK, result.error_detail
    assert Image.open(BytesIO(result.image)).size == (512, 512)
    assert result.request_id.startswith("gen-") and result.seed == 4242
    assert result.model_version == ("custom-gen-1" if options is B64 else "my-model")  # B64 reads /model
    assert result.latency_ms["generation"] > 0 and result.latency_ms["submit"] is None
    assert (result.latency_ms["download"] is not None) == (options is URL)


def test_placeholders_in_the_path_are_url_encoded(emulator):
    options = {**B64, "path": "/generate?at=/x/{model}", "image": {"pointer": "/x/big & model"}}
    result = probe_unscored(service(emulator, "in-path", options, model="big & model"))
    assert result.outcome is Outcome.OK, result.error_detail


def test_same_seed_same_image_other_seed_other_image(emulator):
    first, again = (probe_unscored(service(emulator, "seeded", B64)) for _ in range(2))
    other = probe_unscored(service(emulator, "seeded", {**B64, "body": {**SYNC_BODY, "seed": 7}}))
    assert first.image == again.image != other.image


# -- faults ----------------------------------------------------------------------------------

ANSWERED = sorted((f, o) for f, o in FAULT_OUTCOMES.items() if o != "timeout")
TIMED = sorted(f for f, o in FAULT_OUTCOMES.items() if o == "timeout")


@pytest.mark.parametrize("fault, expected", ANSWERED)
def test_job_mode_fault_outcomes(emulator, fault, expected):
    emulator.faults.set("http", fault, service=f"f-{fault}", **({"seconds": 0.2} if fault == "slow" else {}))
    result = run(service(emulator, f"f-{fault}"))
    assert result.outcome == expected, result.error_detail
    assert API_KEY not in (result.error_detail or "")


@pytest.mark.parametrize(
    "options, fault, expected, detail",
    [
        (B64, "content_policy", "content_filtered", "(/safety = 'blocked_prompt'): blocked prompt by the safety filter"),
        (B64, "output_safety", "content_filtered", "blocked_output"),
        (B64, "malformed_json", "bad_output", "malformed JSON"),
        (URL, "expired_url", "bad_output", "HTTP 404"),
        (RAW, "content_policy", "content_filtered", "header x-safety = 'blocked_prompt'"),
        (RAW, "undecodable_image", "bad_output", "not a PNG"),
        (RAW, "blank_image", "degraded_quality", ""),
        (RAW, "rate_limited", "rate_limited", "(Retry-After: 5s)"),
        (JOB_OPTIONS, "job_failure", "server_error", "failed: status 'failed': CUDA error: out of memory"),
        (JOB_OPTIONS, "quota_exhausted", "auth_error", "HTTP 402: your credit balance is 0"),
    ],
)
def test_fault_forms_per_mode(emulator, options, fault, expected, detail):
    emulator.faults.set("http", fault, service="mode-fault")
    result = run(service(emulator, "mode-fault", options))
    assert result.outcome == expected, result.error_detail
    assert detail in (result.error_detail or "")


def test_deadlines_hold_and_stuck_jobs_are_cancelled(emulator):
    for fault in TIMED:
        emulator.faults.set("http", fault, service=f"dl-{fault}")

    def timed(fault: str):
        began = time.monotonic()
        return run(service(emulator, f"dl-{fault}")), time.monotonic() - began

    with ThreadPoolExecutor(len(TIMED)) as pool:
        runs = dict(zip(TIMED, pool.map(timed, TIMED)))
    for fault, (result, took) in runs.items():
        assert result.outcome is Outcome.TIMEOUT, (fault, result.error_detail)
        assert took <= TIMEOUT_S + 1.0, (fault, took)
    assert "the job was unknown (HTTP 404)" in runs["unknown_job"][0].error_detail
    assert "the job was still 'running'" in runs["stuck_job"][0].error_detail
    jobs = emulator._emulators["http"]._jobs.values()
    assert any(job.canceled and job.fault and job.fault.name == "stuck_job" for job in jobs)


def test_echoed_api_key_is_redacted(emulator):
    emulator.faults.set("http", "invalid_key", service="echo")
    result = run(service(emulator, "echo", B64))
    assert result.outcome is Outcome.AUTH_ERROR and result.http_status == 401
    assert "invalid API key [REDACTED]" in result.error_detail and API_KEY not in result.error_detail


def test_auth_header_and_scheme_are_configurable(emulator):
    # the emulator wants "Authorization: Bearer": a key sent elsewhere is refused as missing
    result = run(service(emulator, "auth", {**B64, "auth_header": "x-api-key", "auth_scheme": ""}))
    assert result.outcome is Outcome.AUTH_ERROR and "missing or malformed" in result.error_detail
    assert run(service(emulator, "auth", B64, api_key=None)).outcome is Outcome.AUTH_ERROR


# -- the response is not where the config says -----------------------------------------------


def test_pointer_that_does_not_resolve_is_bad_output_naming_it(emulator):
    result = run(service(emulator, "miss", {**B64, "image": {"pointer": "/images/0/b64"}}))
    assert result.outcome is Outcome.BAD_OUTPUT
    assert "no image at /images/0/b64" in result.error_detail


def test_missing_job_id_and_unexpected_status_are_bad_output(emulator):
    no_id = copy.deepcopy(JOB_OPTIONS)
    no_id["poll"]["id_pointer"] = "/job_id"
    assert "no job id at /job_id" in run(service(emulator, "noid", no_id)).error_detail
    strict = copy.deepcopy(JOB_OPTIONS)
    strict["poll"]["pending"] = ["processing"]  # the emulator says "running"
    result = run(service(emulator, "strict", strict))
    assert result.outcome is Outcome.BAD_OUTPUT and "unexpected job status 'running'" in result.error_detail


def test_poll_url_from_the_submit_answer(emulator):
    options = copy.deepcopy(JOB_OPTIONS)
    options["poll"] = {k: v for k, v in options["poll"].items() if k not in ("id_pointer", "url", "cancel_url")}
    options["poll"]["url_pointer"] = "/urls/get"
    result = run(service(emulator, "by-url", options))
    assert result.outcome is Outcome.OK, result.error_detail


# -- health checks ---------------------------------------------------------------------------


def test_health_check_configured_and_default(emulator):
    assert run(service(emulator, "h"), ProbeKind.HEALTH).outcome is Outcome.OK
    emulator.faults.set("http", "server_error", service="h")
    failing = run(service(emulator, "h"), ProbeKind.HEALTH)
    assert failing.outcome is Outcome.SERVER_ERROR and "internal server error" in failing.error_detail
    emulator.faults.clear()
    # without `health`, any answer below 500 from base_url counts as up
    default = run(service(emulator, "h", B64), ProbeKind.HEALTH)
    assert default.outcome is Outcome.OK and default.http_status == 404 and default.error_detail == "HTTP 404"


def test_health_check_unexpected_status(emulator):
    options = {**B64, "health": {"path": "/health", "expect_status": 204}}
    result = run(service(emulator, "h2", options), ProbeKind.HEALTH)
    assert result.outcome is Outcome.BAD_OUTPUT and "expected [204]" in result.error_detail


# -- config validation and templates ---------------------------------------------------------

CONFIG = """\
canaries:
  - {id: c, prompt: "an apple"}
services:
  - id: custom
    provider: http
    base_url: http://127.0.0.1:9/gen
    canaries: [c]
    options:
      body: {prompt: "{prompt}"}
      image:
        pointer: OPTION
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (CONFIG.replace("OPTION", "data/0"),
         "x.yaml:11 services[0].options.image.pointer: invalid JSON pointer 'data/0': must be empty or start with '/'"),
        (CONFIG.replace("OPTION", "/a~2b"),
         "x.yaml:11 services[0].options.image.pointer: invalid JSON pointer '/a~2b': '~' must be followed by 0 or 1"),
        (CONFIG.replace("OPTION", "/x").replace('"{prompt}"', '"{promt}"'),
         "x.yaml:9 services[0].options.body: unknown placeholder {promt} in '{promt}'"),
        (CONFIG.replace("pointer: OPTION", "raw: false"),
         "x.yaml:10 services[0].options.image: give either 'pointer' (JSON answer) or 'raw: true'"),
        (CONFIG.replace("pointer: OPTION", "poniter: /x"),
         "x.yaml:11 services[0].options.image.poniter: unknown key 'poniter'"),
    ],
)
def test_config_errors_name_file_line_and_key(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", env={}, checks=[provider_issues])
    assert any(line.startswith(expected) for line in caught.value.lines), caught.value.lines


def test_poll_needs_a_job_location():
    with pytest.raises(ValueError, match="url_pointer"):
        HTTPOptions.model_validate({"image": {"pointer": "/u"}, "poll": {"status_pointer": "/s", "success": ["ok"]}})
    with pytest.raises(ValueError, match="synchronous"):
        HTTPOptions.model_validate({"image": {"raw": True}, "poll": {"url_pointer": "/u", "status_pointer": "/s",
                                                                     "success": ["ok"]}})


def test_render_and_resolve():
    values = {"prompt": "an apple", "seed": 7, "width": 512, "height": None, "size": "512x512", "model": "m",
              "negative_prompt": ""}
    body = render({"input": {"text": "draw {prompt} at {size}", "seed": "{seed}", "dims": ["{width}", "{height}"]}},
                  values)
    assert body == {"input": {"text": "draw an apple at 512x512", "seed": 7, "dims": [512, None]}}
    doc = {"a/b": {"m~n": [10, {"x": 0}]}, "": 1}
    assert resolve(doc, "/a~1b/m~0n/1/x") == 0 and resolve(doc, "/") == 1 and resolve(doc, "") is doc
    missing = resolve(doc, "/a~1b/m~0n/2")
    assert missing is resolve(doc, "/a~1b/m~0n/01") is resolve(doc, "/nope")
    assert HTTPAdapter(ServiceConfig(id="s", provider="http", canaries=["c"], options=B64)).options.image.pointer
