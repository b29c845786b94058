"""Every adapter x every fault its emulator supports -> the expected outcome, over real loopback HTTP.

The table is each emulator module's ``FAULT_OUTCOMES`` (and ``SERVICE_DEFAULTS`` for the
service settings), so a new provider is covered as soon as its emulator is registered.
Faults are set per service (``/s/<service>/<provider>``), so cases never disturb each other
and the deadline cases run concurrently.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from importlib import import_module

import pytest

from monitor.config import CanaryConfig, Config, ServiceConfig
from monitor.engine.runner import ProbeRunner
from monitor.enums import Outcome, ProbeKind
from probes.emulator.registry import EMULATORS

TIMEOUT_S = 2.0
DEADLINE_SLACK_S = 1.0
DEADLINE_WORKERS = 4  # deadline cases at once: enough to overlap them, few enough for a 2-core machine
QUALITY_FAULTS = ("noise_image", "blurred_image", "model_swap", "cached_image")  # judged by quality scoring, not adapters
API_KEY = "test-key-0123456789abcdef"


def emulator_module(provider: str):
    return import_module(EMULATORS[provider].partition(":")[0])


def cases() -> list[tuple[str, str, str]]:
    table = []
    for provider in sorted(EMULATORS):
        for fault, outcome in sorted(getattr(emulator_module(provider), "FAULT_OUTCOMES", {}).items()):
            table.append((provider, fault, outcome))
    return table


CASES = cases()
TIMED = [case for case in CASES if case[2] == "timeout"]
ANSWERED = [case for case in CASES if case[2] != "timeout"]
CANARY = CanaryConfig(id="canary", prompt="a red apple on a wooden table", size="1024x1024", seed=4242)


def service_for(emulator, provider: str, service_id: str) -> ServiceConfig:
    fields = {"id": service_id, "provider": provider, "base_url": emulator.base_url(provider, service=service_id),
              "api_key": API_KEY, "canaries": [CANARY.id], "allow_private_network": True}
    fields.update(getattr(emulator_module(provider), "SERVICE_DEFAULTS", {}))
    fields["timeout"] = timedelta(seconds=TIMEOUT_S)
    return ServiceConfig(**fields)


def probe(emulator, provider: str, service_id: str, kind: ProbeKind = ProbeKind.CANARY):
    service = service_for(emulator, provider, service_id)
    runner = ProbeRunner(Config(canaries=[CANARY], services=[service]), region="test")
    try:
        began = time.monotonic()
        result = runner.run(service, CANARY if kind is not ProbeKind.HEALTH else None, kind)
        return result, time.monotonic() - began
    finally:
        runner.close()


def test_every_registered_emulator_declares_its_fault_table():
    for provider in EMULATORS:
        module = emulator_module(provider)
        assert isinstance(getattr(module, "FAULT_OUTCOMES", None), dict), provider
        assert "server_error" in module.FAULT_OUTCOMES and "hang" in module.FAULT_OUTCOMES, provider
        assert set(module.FAULT_OUTCOMES.values()) <= {o.value for o in Outcome}, provider


@pytest.mark.parametrize("provider", sorted(EMULATORS))
def test_clean_run_is_ok_and_health_check_passes(emulator, provider):
    result, _ = probe(emulator, provider, f"clean-{provider}")
    assert result.outcome is Outcome.OK, (provider, result.error_detail)
    assert result.image_sha256 and result.hashes.get("phash") and result.latency_ms["total"] > 0
    health, _ = probe(emulator, provider, f"health-{provider}", ProbeKind.HEALTH)
    assert health.outcome is Outcome.OK, (provider, health.error_detail)


@pytest.mark.parametrize("provider, fault, expected", ANSWERED, ids=[f"{p}-{f}" for p, f, _ in ANSWERED])
def test_fault_gives_expected_outcome(emulator, provider, fault, expected):
    service_id = f"{provider}-{fault}"
    params = {"seconds": 0.3} if fault == "slow" else {}
    emulator.faults.set(provider, fault, service=service_id, **params)
    result, _ = probe(emulator, provider, service_id)
    assert result.outcome == expected, (provider, fault, result.error_detail)
    assert API_KEY not in (result.error_detail or "")


@pytest.mark.parametrize("provider", sorted(EMULATORS))
def test_quality_faults_still_return_a_decodable_image(emulator, provider):
    for fault in QUALITY_FAULTS:
        service_id = f"{provider}-{fault}"
        emulator.faults.set(provider, fault, service=service_id)
        result, _ = probe(emulator, provider, service_id)
        assert result.outcome in (Outcome.OK, Outcome.DEGRADED_QUALITY), (provider, fault, result.error_detail)


def test_deadlines_hold_for_every_adapter(emulator):
    """Hung requests, stuck and unknown jobs end as ``timeout`` within the deadline plus one second.

    On a busy machine every thread wakes late, the probe's as much as any: each probe runs beside a
    control thread that sleeps for the same deadline, and the control's own lateness (measured in
    the same run, under the same load) is added to the allowance.  A probe that ignored its deadline
    overruns by whole seconds, which no load lag explains away.
    """
    assert TIMED
    for provider, fault, _ in TIMED:
        emulator.faults.set(provider, fault, service=f"dl-{provider}-{fault}")

    def timed_case(case):
        late: list[float] = []
        control = threading.Thread(target=lambda: late.append(_oversleep(TIMEOUT_S)))
        control.start()
        result, took = probe(emulator, case[0], f"dl-{case[0]}-{case[1]}")
        control.join()
        return case, result, took, late[0]

    with ThreadPoolExecutor(max_workers=DEADLINE_WORKERS) as pool:
        runs = list(pool.map(timed_case, TIMED))
    for (provider, fault, _), result, took, lag in runs:
        assert result.outcome is Outcome.TIMEOUT, (provider, fault, result.outcome, result.error_detail)
        allowed = TIMEOUT_S + DEADLINE_SLACK_S + lag
        assert result.latency_ms["total"] <= allowed * 1000, (provider, fault, result.latency_ms, lag)  # its own clock
        assert took <= allowed, (provider, fault, took, lag)


def _oversleep(seconds: float) -> float:
    """How late a plain sleep of ``seconds`` wakes up right now (the machine's scheduling lag)."""
    began = time.monotonic()
    threading.Event().wait(seconds)
    return max(0.0, time.monotonic() - began - seconds)
