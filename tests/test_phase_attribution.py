"""Queue and generation time of every polling adapter against a scripted job timeline.

The emulator's ``timeline`` fault scripts a job: pending until ``t1``, running until ``t2``, then
done.  The adapter only sees the job when it looks, so its split can be off by at most what its
looks leave open: half the gap between the two looks around ``t1`` for the queue (a state change
between two looks is split at the midpoint), plus the gap around ``t2`` for the generation (the
time until the look that finds it done counts as generation).  The looks are the requests the
adapter sent, recorded as their answers arrive, so the tolerance follows the real poll intervals
on a busy machine.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from monitor.config import CanaryConfig, ServiceConfig
from monitor.enums import Outcome
from probes.base import ProbeContext
from probes.http import make_client
from probes.registry import adapter_class
from tests.test_all_adapters import emulator_module

SLACK_S = 0.15  # our look vs the server's clock: request and thread scheduling on a busy machine
#: provider -> the service fields its emulated polling needs beyond the emulator's defaults
POLLING: dict[str, dict[str, Any]] = {
    "comfyui": {},
    "midjourney_proxy": {"api_key": "mj-secret"},
    "replicate": {"api_key": "r8_test", "options": {"wait": 0}},  # no held create: poll from the start
    "fal": {"api_key": "fal-key"},
    "bfl": {"api_key": "bfl-key"},
    "http": {"api_key": "gen-key"},  # the emulator's defaults describe its job API
}
#: (seconds pending, seconds running): a change between two looks, and one gap holding both changes
TIMELINES = [(1.0, 1.2), (0.6, 0.25)]


def service_for(emulator, provider: str) -> ServiceConfig:
    fields = POLLING[provider]
    defaults = getattr(emulator_module(provider), "SERVICE_DEFAULTS", {})
    return ServiceConfig.model_validate({
        "id": f"{provider}-timeline", "provider": provider, "canaries": ["c"], "timeout": timedelta(seconds=8),
        "base_url": emulator.base_url(provider, service=f"{provider}-timeline"), "allow_private_network": True,
        **defaults, **fields,
    })


def scripted_probe(emulator, provider: str, queue_s: float, run_s: float) -> tuple[dict[str, Any], list[float]]:
    """Run one probe against the scripted job; its phases and the times of its looks (since the submit)."""
    service = service_for(emulator, provider)
    emulator.faults.set(provider, "timeline", service=service.id, queue_s=queue_s, run_s=run_s, count=1)
    canary = CanaryConfig(id="c", prompt=f"a red apple {time.monotonic_ns()}", size="512x512", seed=7)
    sent: list[float] = []

    def note(response: httpx.Response) -> None:  # a look happens when its answer arrives, however long it took
        sent.append(time.monotonic())

    with make_client(service) as client:
        client.event_hooks["response"] = [note]
        adapter = adapter_class(provider)(service)
        result = adapter.probe(ProbeContext(service, canary, client, seed=7))
    assert result.outcome is Outcome.OK, (provider, result.error_detail)
    submitted = sent[0]
    return result.latency_ms, [t - submitted for t in sent[1:]]


def gap_around(looks: list[float], moment: float) -> float:
    """The time between the last look before ``moment`` and the first one after it."""
    before = max((t for t in looks if t <= moment), default=0.0)
    after = min((t for t in looks if t > moment), default=looks[-1] if looks else moment)
    return max(after - before, 0.0)


@pytest.mark.parametrize("queue_s, run_s", TIMELINES)
@pytest.mark.parametrize("provider", sorted(POLLING))
def test_queue_and_generation_follow_the_script(emulator, provider, queue_s, run_s):
    phases, looks = scripted_probe(emulator, provider, queue_s, run_s)
    done = queue_s + run_s
    first_gap, last_gap = gap_around(looks, queue_s), gap_around(looks, done)
    queue, generation = phases["queue"] / 1000.0, phases["generation"] / 1000.0
    assert abs(queue - queue_s) <= first_gap / 2 + SLACK_S, (provider, phases, looks)
    assert abs(generation - run_s) <= first_gap / 2 + last_gap + SLACK_S, (provider, phases, looks)


def test_comfyui_uses_the_servers_own_run_time(emulator):
    """Pending at one look, done at the next: ComfyUI's execution timestamps narrow where the run began."""
    phases, looks = scripted_probe(emulator, "comfyui", 0.6, 0.25)
    gap = gap_around(looks, 0.6)
    assert phases["generation"] / 1000.0 >= 0.25 - SLACK_S, (phases, looks)
    assert abs(phases["queue"] / 1000.0 - 0.6) <= (gap - 0.25) / 2 + SLACK_S, (phases, looks)


@pytest.mark.parametrize("provider, poll_path", [("comfyui", "/history/"), ("fal", "/status"), ("midjourney_proxy", "/fetch"),
                                                 ("replicate", "/v1/predictions/")])
def test_a_connection_lost_mid_poll_has_no_http_status(emulator, provider, poll_path):
    """The submit's 200 is not the status of the request that failed: a dropped connection has none."""
    service = service_for(emulator, provider)
    emulator.faults.set(provider, "timeline", service=service.id, queue_s=0.3, run_s=1.0, count=1)  # short: ComfyUI runs one prompt at a time
    polls: list[str] = []

    def drop_second_poll(request: httpx.Request) -> None:
        if poll_path in request.url.path and request.method == "GET":
            polls.append(request.url.path)
            if len(polls) == 2:
                raise httpx.ConnectError("connection reset by peer", request=request)

    canary = CanaryConfig(id="c", prompt=f"a red apple {time.monotonic_ns()}", size="512x512", seed=7)
    with make_client(service) as client:
        client.event_hooks["request"] = [drop_second_poll]
        result = adapter_class(provider)(service).probe(ProbeContext(service, canary, client, seed=7))
    assert result.outcome is Outcome.CONNECTION_ERROR and len(polls) == 2, (result.error_detail, polls)
    assert result.http_status is None
