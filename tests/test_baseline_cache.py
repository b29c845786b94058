"""``genstatus baseline`` on ComfyUI: a fixed seed is reproduced by real runs, never by cache hits."""

from __future__ import annotations

from monitor.store.references import load_profile
from tests.test_quality_profiles import FIXED, baseline, engine, service_on, setup

__all__ = ["engine"]  # the fixture, used by name


def test_fixed_seed_samples_are_generated_again_and_reproduce(emulator, engine):
    service = service_on(emulator, "comfyui", "comfy-baseline")
    cfg, _, runner = setup(engine, service)
    try:
        report = baseline(cfg, runner, engine, service, FIXED)
    finally:
        runner.close()
    assert report.stored and report.drift_checked and not report.failures, report.to_dict()
    assert any(f"fixed seed {FIXED.seed} reproduced" in note for note in report.notes)


def test_cached_repeats_are_failed_samples_not_a_reproduced_seed(emulator, engine):
    """The issue's case: samples 2 and 3 answered from ComfyUI's cache were called 'reproduced'."""
    service = service_on(emulator, "comfyui", "comfy-cached", options={"defeat_cache": False})
    cfg, _, runner = setup(engine, service)
    try:
        report = baseline(cfg, runner, engine, service, FIXED)
    finally:
        runner.close()
    assert not report.stored and not report.drift_checked
    assert not any("reproduced" in note for note in report.notes), report.notes
    assert len(report.failures) == 2 and all("answered from ComfyUI's cache" in f for f in report.failures)
    assert load_profile(engine, service.id, FIXED.id) is None


def test_a_server_that_answers_from_cache_anyway_gets_no_profile(emulator, engine):
    service = service_on(emulator, "comfyui", "comfy-stubborn")
    cfg, _, runner = setup(engine, service)
    emulator.faults.set("comfyui", "execution_cached", service=service.id)
    try:
        report = baseline(cfg, runner, engine, service, FIXED)
    finally:
        runner.close()
    assert not report.stored and len(report.failures) == 3
    assert not any("reproduced" in note for note in report.notes)
