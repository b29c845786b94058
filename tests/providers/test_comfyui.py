"""The ComfyUI adapter against its emulator over loopback HTTP: workflow injection, queue/history, faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from monitor.config import CanaryConfig, ConfigError, ServiceConfig, parse_config
from monitor.enums import Outcome, ProbeKind
from probes.base import ProbeContext
from probes.emulator.comfyui import FAULT_OUTCOMES, SERVICE_DEFAULTS
from probes.emulator.server import EmulatorServer
from probes.providers.comfyui import DEFAULT_WORKFLOW, ComfyUIAdapter
from probes.registry import provider_issues
from tests.providers.helpers import run_with_runner, with_

TOKEN = "Bearer proxy-token-0123456789"


@pytest.fixture
def service(emulator) -> ServiceConfig:
    return ServiceConfig(
        id="comfy-test", provider="comfyui", base_url=emulator.base_url("comfyui", service="comfy-test"),
        canaries=["still-life"], timeout=timedelta(seconds=3), allow_private_network=True,
        headers={"Authorization": TOKEN}, **SERVICE_DEFAULTS,
    )


run = run_with_runner


def fresh(seed: int = 0) -> CanaryConfig:
    """A canary whose graph the emulator has not cached yet."""
    return CanaryConfig(id="c", prompt=f"a red apple {time.monotonic_ns()}", size="512x768", seed=seed or None)


def test_clean_run(service):
    result = run(service, fresh(77))
    assert result.outcome is Outcome.OK, result.error_detail
    assert (result.image_width, result.image_height) == (512, 768) and result.seed == 77
    assert result.model_version == "v1-5-pruned-emaonly.safetensors" and len(result.request_id) == 36
    phases = result.latency_ms
    assert phases["submit"] > 0 and phases["queue"] is not None and phases["generation"] >= 250 and phases["download"] > 0


def history(service: ServiceConfig, prompt_id: str) -> dict:
    return httpx.get(f"{service.base_url}/history/{prompt_id}").json()[prompt_id]


def cached_nodes(entry: dict) -> list[str]:
    return next(data["nodes"] for event, data in entry["status"]["messages"] if event == "execution_cached")


def test_a_fixed_seed_is_generated_again_not_served_from_the_cache(service, canary):
    first, second = run(service, canary), run(service, canary)
    assert first.outcome is second.outcome is Outcome.OK, second.error_detail
    assert first.image_sha256 == second.image_sha256 and first.request_id != second.request_id  # same seed, same picture
    assert second.latency_ms["generation"] >= 250  # the sampler ran again
    cached = cached_nodes(history(service, second.request_id))
    assert "3" not in cached and "8" not in cached and {"4", "5"} <= set(cached)  # loaders cached, as for any user


def test_a_run_answered_from_the_cache_is_not_a_measurement(service, canary):
    plain = with_(service, options={"defeat_cache": False})
    first, second = run(plain, canary), run(plain, canary)
    assert first.outcome is Outcome.OK, first.error_detail
    assert second.outcome is Outcome.PROBE_ERROR and "answered from ComfyUI's cache" in second.error_detail
    assert "execution_cached: nodes 3, 4, 5, 6, 7, 8, 9" in second.error_detail


def test_a_server_whose_cache_ignores_the_run_input_is_flagged(emulator, service):
    emulator.faults.set("comfyui", "execution_cached", service="comfy-test")
    result = run(service, fresh(11))
    assert result.outcome is Outcome.PROBE_ERROR and "nothing was generated" in result.error_detail


def test_no_seed_draws_one_per_run(service):
    canary = fresh()
    first, second = run(service, canary), run(service, canary)
    assert first.outcome is second.outcome is Outcome.OK
    assert first.seed != second.seed and first.image_sha256 != second.image_sha256


def test_queue_time_is_measured(emulator, service):
    emulator.faults.set("comfyui", "timeline", service="blocker", queue_s=0, run_s=1.2, count=1)
    blocker = json.loads(DEFAULT_WORKFLOW.read_text())
    blocker["6"]["inputs"]["text"] = f"ahead {time.monotonic_ns()}"
    httpx.post(f"{emulator.base_url('comfyui', service='blocker')}/prompt", json={"prompt": blocker})
    result = run(with_(service, timeout=timedelta(seconds=5)), fresh(5))  # waits behind the blocker's 1.2 s
    assert result.outcome is Outcome.OK, result.error_detail
    assert result.latency_ms["queue"] >= 500 and result.latency_ms["generation"] >= 250


def test_graph_injection(service):
    canary = CanaryConfig(id="c", prompt="p", size="640x384", negative_prompt="blurry")
    graph, seed = ComfyUIAdapter(with_(service, model="sd_xl_base_1.0.safetensors")).build_graph(
        ProbeContext(service, canary, client=None, seed=9))  # type: ignore[arg-type]
    assert seed == 9 and graph["3"]["inputs"]["seed"] == 9
    assert graph["6"]["inputs"]["text"] == "p" and graph["7"]["inputs"]["text"] == "blurry"
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (640, 384)
    assert graph["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert graph["3"]["inputs"]["positive"] == ["6", 0]  # links untouched


def test_custom_workflow_and_node_options(tmp_path, service):
    graph = json.loads(DEFAULT_WORKFLOW.read_text())
    graph["10"] = graph.pop("6")
    graph["3"]["inputs"]["positive"] = ["10", 0]
    path = tmp_path / "flow_api.json"
    path.write_text(json.dumps(graph))
    result = run(with_(service, options={"workflow": str(path), "prompt_node": "10", "output_node": "9"}), fresh(3))
    assert result.outcome is Outcome.OK, result.error_detail


@pytest.mark.parametrize(
    "content, options, message",
    [
        (None, {}, "cannot read workflow"),
        ("{not json", {}, "is not valid JSON"),
        ('{"nodes": [], "links": []}', {}, "UI format"),
        ('{"1": {"class_type": "SaveImage", "inputs": {}}}', {}, "has no node '6' for prompt_node"),
        (None, {"seed_input": "noise_seed"}, "has no input 'noise_seed' for seed_node"),
    ],
)
def test_bad_workflow_is_a_config_error_and_a_probe_error(tmp_path, service, canary, content, options, message):
    path = tmp_path / "w.json"
    if content is not None:
        path.write_text(content)
    workflow = str(path) if content is not None or not options else None
    options = {**options, **({"workflow": workflow} if workflow else {})}
    yaml = f"""
canaries: [{{id: c, prompt: p}}]
services:
  - {{id: s, provider: comfyui, canaries: [c], options: {json.dumps(options)}}}
"""
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml, env={}, checks=[provider_issues])
    result = run(with_(service, options=options), canary)
    assert result.outcome is Outcome.PROBE_ERROR and message in result.error_detail


TIMED = {fault for fault, outcome in FAULT_OUTCOMES.items() if outcome == "timeout"}


@pytest.mark.parametrize("fault", sorted(set(FAULT_OUTCOMES) - TIMED))
def test_fault_outcome(emulator, service, canary, fault):
    emulator.faults.set("comfyui", fault, service="comfy-test", **({"seconds": 0.2} if fault == "slow" else {}))
    result = run(service, canary)
    assert result.outcome == FAULT_OUTCOMES[fault], result.error_detail
    assert "proxy-token" not in (result.error_detail or "")


@pytest.mark.parametrize(
    "fault, text",
    [
        ("job_failure", "node 3 (KSampler): torch.OutOfMemoryError: Allocation on device 0"),
        ("bad_request", "prompt_outputs_failed_validation: Prompt outputs failed validation; node 4 (CheckpointLoaderSimple): "
                        "Value not in list: ckpt_name: 'missing.safetensors' not in []"),
        ("rate_limited", "(Retry-After: 5s)"),
        ("invalid_key", "invalid credentials Bearer [REDACTED]"),
    ],
)
def test_fault_details(emulator, service, canary, fault, text):
    emulator.faults.set("comfyui", fault, service="comfy-test")
    assert text in run(service, canary).error_detail


def test_emulator_validates_workflows(service):
    result = run(with_(service, model="nonexistent.safetensors"), fresh(1))
    assert result.outcome is Outcome.CLIENT_ERROR and "ckpt_name: 'nonexistent.safetensors' not in" in result.error_detail


@pytest.mark.parametrize("fault", sorted(TIMED))
def test_deadline_faults_time_out_in_time(emulator, service, fault):
    emulator.faults.set("comfyui", fault, service="comfy-test")
    began = time.monotonic()
    result = run(with_(service, timeout=timedelta(seconds=2)), fresh(2))
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    assert time.monotonic() - began < 3
    if fault == "stuck_job":  # the abandoned prompt was deleted from the queue
        queue = httpx.get(f"{service.base_url}/queue").json()
        assert result.request_id not in {item[1] for item in queue["queue_pending"]}


def test_api_prefix_is_served(emulator, service, canary):
    assert run(with_(service, base_url=service.base_url + "/api"), canary).outcome is Outcome.OK


def test_health_check(emulator, service):
    assert run(service, None, ProbeKind.HEALTH).outcome is Outcome.OK
    emulator.faults.set("comfyui", "server_error", service="comfy-test")
    failed = run(service, None, ProbeKind.HEALTH)
    assert failed.outcome is Outcome.SERVER_ERROR and "Server got itself in trouble" in failed.error_detail


def _start_in_background(service: ServiceConfig, canary: CanaryConfig) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", run(service, canary)))
    thread.start()
    return thread, outcome


def _running_ids(base_url: str) -> list[str]:
    return [item[1] for item in httpx.get(f"{base_url}/queue").json()["queue_running"]]


@pytest.fixture
def own(emulator) -> Iterator[tuple[EmulatorServer, ServiceConfig]]:
    """An emulator of its own: a prompt left running here must not hold up the shared one's queue."""
    with EmulatorServer() as server:
        yield server, ServiceConfig(
            id="comfy-test", provider="comfyui", base_url=server.base_url("comfyui", service="comfy-test"),
            canaries=["still-life"], timeout=timedelta(seconds=3), allow_private_network=True, **SERVICE_DEFAULTS)


@pytest.mark.parametrize("version, stopped", [("", True), ("/v0.3.43", False)])
def test_at_the_deadline_only_our_running_prompt_is_interrupted(own, version, stopped):
    """A new server stops our prompt by id and nobody else's; an old one (global interrupt) is left alone."""
    emulator, service = own
    emulator.faults.set("comfyui", "timeline", service="comfy-test", queue_s=0, run_s=6, count=1)
    ours = with_(service, base_url=service.base_url + version, timeout=timedelta(seconds=1.5))
    thread, outcome = _start_in_background(ours, fresh(21))
    deadline = time.monotonic() + 1.2
    while not _running_ids(ours.base_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    theirs = json.loads(DEFAULT_WORKFLOW.read_text())
    theirs["6"]["inputs"]["text"] = f"someone else's {time.monotonic_ns()}"
    other_id = httpx.post(f"{emulator.base_url('comfyui')}/prompt", json={"prompt": theirs}).json()["prompt_id"]
    thread.join(10)
    result = outcome["result"]
    assert result.outcome is Outcome.TIMEOUT, result.error_detail
    entry = httpx.get(f"{service.base_url}/history/{result.request_id}").json().get(result.request_id)
    if stopped:
        assert entry is not None and any(event == "execution_interrupted" for event, _ in entry["status"]["messages"])
    else:
        assert entry is None and result.request_id in _running_ids(service.base_url)  # left to finish
    time.sleep(0.5)  # the other prompt runs (new server: moved up) or waits (old server), never interrupted
    other = httpx.get(f"{service.base_url}/history/{other_id}").json().get(other_id)
    assert other is None or other["status"]["status_str"] == "success"


def test_an_old_server_ignores_the_prompt_id_which_is_why_it_is_never_sent(own):
    emulator, service = own
    emulator.faults.set("comfyui", "timeline", service="comfy-test", queue_s=0, run_s=3, count=1)
    graph = json.loads(DEFAULT_WORKFLOW.read_text())
    graph["6"]["inputs"]["text"] = f"running {time.monotonic_ns()}"
    running = httpx.post(f"{service.base_url}/prompt", json={"prompt": graph}).json()["prompt_id"]
    httpx.post(f"{service.base_url}/interrupt", json={"prompt_id": "someone-elses"})  # new server: not running, no-op
    assert running in _running_ids(service.base_url)
    httpx.post(f"{service.base_url}/v0.3.43/interrupt", json={"prompt_id": "someone-elses"})  # old: stops what runs
    assert running not in _running_ids(service.base_url)
    assert httpx.get(f"{service.base_url}/v0.3.43/system_stats").json()["system"]["comfyui_version"] == "0.3.43"
