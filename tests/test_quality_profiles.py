"""Reference profiles end to end: baseline from the emulators, drift, stuck output, thumbnails."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.cli import main
from monitor.config import CanaryConfig, Config, QualityConfig, ServiceConfig
from monitor.engine.baseline import capture
from monitor.engine.runner import ProbeRunner
from monitor.enums import Outcome
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import ReferenceImageRow, ResultImageRow
from monitor.store.references import ReferenceSource, load_profile
from monitor.store.results import THUMBNAILS_KEPT, ResultStore

FIXED = CanaryConfig(id="fixed", prompt="a red apple on a wooden table", size="512x512", seed=1234)
RANDOM = CanaryConfig(id="random", prompt="a lighthouse at dusk, oil painting", size="512x512", seed="random")
#: emulated providers whose adapter passes the seed (drift is judged for them)
SEEDED = ["stability", "replicate", "automatic1111", "fal", "bfl"]


def service_on(emulator, provider: str, service_id: str, **extra) -> ServiceConfig:
    from tests.test_all_adapters import emulator_module

    fields = {"id": service_id, "provider": provider, "base_url": emulator.base_url(provider, service=service_id),
              "api_key": "test-key-0123456789abcdef", "canaries": [FIXED.id, RANDOM.id], "allow_private_network": True,
              "timeout": timedelta(seconds=20)}
    fields.update(getattr(emulator_module(provider), "SERVICE_DEFAULTS", {}))
    fields.update(extra)
    return ServiceConfig(**fields)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def setup(engine, service: ServiceConfig, **config):
    cfg = Config(canaries=[FIXED, RANDOM], services=[service], **config)
    store = ResultStore(engine)
    store.sync_catalog(cfg)
    runner = ProbeRunner(cfg, region="test", references=ReferenceSource(engine))
    return cfg, store, runner


def baseline(cfg, _, engine, service, canary, samples=3):
    """As ``genstatus baseline`` does it: a plain runner (no references), then the profile is stored."""
    runner = ProbeRunner(cfg, region="test")
    try:
        return capture(cfg, service, canary, lambda s, c: runner.run(s, c, keep_image=True), engine,
                       samples=samples, region="test")
    finally:
        runner.close()


@pytest.mark.parametrize("provider", SEEDED)
def test_model_swap_is_drift_against_the_baseline(emulator, engine, provider):
    service = service_on(emulator, provider, f"drift-{provider}")
    cfg, store, runner = setup(engine, service)
    try:
        report = baseline(cfg, runner, engine, service, FIXED)
        assert report.stored and report.drift_checked, report.to_dict()
        normal = runner.run(service, FIXED)
        assert normal.outcome is Outcome.OK, normal.error_detail
        emulator.faults.set(provider, "model_swap", service=service.id)
        swapped = runner.run(service, FIXED)
    finally:
        runner.close()
    assert swapped.outcome is Outcome.DEGRADED_QUALITY, (swapped.outcome, swapped.error_detail)
    assert "drift" in swapped.quality_flags
    assert "differs from every reference" in swapped.error_detail


def test_without_a_baseline_model_swap_passes_unnoticed(emulator, engine):
    """The drift check needs references: this is what ``genstatus baseline`` is for."""
    service = service_on(emulator, "stability", "nobaseline")
    cfg, store, runner = setup(engine, service)
    emulator.faults.set("stability", "model_swap", service=service.id)
    try:
        result = runner.run(service, FIXED)
    finally:
        runner.close()
    assert result.outcome is Outcome.OK


@pytest.mark.parametrize("provider", ["stability", "openai"])
def test_cached_image_for_random_seeds_is_stuck_output(emulator, engine, provider):
    service = service_on(emulator, provider, f"stuck-{provider}", **({"model": "dall-e-2"} if provider == "openai" else {}))
    cfg, store, runner = setup(engine, service)
    try:
        for _ in range(2):  # normal outputs vary from run to run: no stuck flag
            result = runner.run(service, RANDOM)
            assert result.outcome is Outcome.OK, (result.outcome, result.error_detail)
            store.record(result)
        emulator.faults.set(provider, "cached_image", service=service.id)
        first = runner.run(service, RANDOM)
        store.record(first)
        second = runner.run(service, RANDOM)
    finally:
        runner.close()
    assert first.outcome is Outcome.OK, first.error_detail
    assert second.outcome is Outcome.DEGRADED_QUALITY, (second.outcome, second.error_detail)
    assert "stuck_output" in second.quality_flags
    assert "cached or fallback image" in second.error_detail


def test_same_fixed_seed_repeating_is_not_stuck(emulator, engine):
    service = service_on(emulator, "stability", "fixed-repeat")
    cfg, store, runner = setup(engine, service)
    try:
        for _ in range(3):
            result = runner.run(service, FIXED)
            store.record(result)
            assert result.outcome is Outcome.OK, result.error_detail
    finally:
        runner.close()


def test_baseline_of_a_cached_provider_is_refused(emulator, engine):
    service = service_on(emulator, "stability", "cached-baseline")
    cfg, store, runner = setup(engine, service)
    emulator.faults.set("stability", "cached_image", service=service.id)
    try:
        report = baseline(cfg, runner, engine, service, RANDOM)
    finally:
        runner.close()
    assert not report.stored
    assert any("cached image" in note for note in report.notes)
    assert load_profile(engine, service.id, RANDOM.id) is None


def test_baseline_on_a_provider_without_seeds_does_not_judge_drift(emulator, engine):
    service = service_on(emulator, "openai", "noseed", model="dall-e-2")
    cfg, store, runner = setup(engine, service)
    try:
        report = baseline(cfg, runner, engine, service, FIXED)
    finally:
        runner.close()
    assert report.stored and not report.drift_checked
    profile = load_profile(engine, service.id, FIXED.id)
    assert profile is not None and not profile.drift_applies(None)


def test_baseline_failures_keep_the_old_profile(emulator, engine):
    service = service_on(emulator, "stability", "failing-baseline")
    cfg, store, runner = setup(engine, service)
    try:
        assert baseline(cfg, runner, engine, service, FIXED).stored
        emulator.faults.set("stability", "server_error", service=service.id)
        report = baseline(cfg, runner, engine, service, FIXED)
    finally:
        runner.close()
    assert not report.stored and len(report.failures) == 3
    assert len(load_profile(engine, service.id, FIXED.id).images) == 3


def test_thumbnails_are_stored_and_pruned(emulator, engine):
    service = service_on(emulator, "automatic1111", "thumbs", quality=QualityConfig(keep_failing_images="2d"))
    cfg, store, runner = setup(engine, service)
    try:
        results = [runner.run(service, RANDOM) for _ in range(3)]
        emulator.faults.set("automatic1111", "black_image", service=service.id)
        failing = runner.run(service, RANDOM)
    finally:
        runner.close()
    assert failing.outcome is Outcome.DEGRADED_QUALITY and failing.kept_image
    for result in results:
        assert result.thumbnail and result.thumbnail[:4] == b"RIFF" and len(result.thumbnail) < 20_000
        assert result.kept_image is None
    store.record(failing)
    for _ in range(THUMBNAILS_KEPT + 2):
        store.record_many([results[0]])
    with engine.connect() as connection:
        rows = connection.execute(select(ResultImageRow)).all()
        kept = connection.execute(select(func.count()).where(ResultImageRow.image.is_not(None))).scalar_one()
    assert len(rows) == THUMBNAILS_KEPT + 1  # the failing one stays while its full image is kept
    assert kept == 1


def test_spooled_results_keep_their_thumbnail(tmp_path):
    from monitor.engine.runner import apply_scoring
    from monitor.store.results import result_from_dict, spool_record
    from tests.test_runner import image_bytes, result_with

    result = apply_scoring(result_with(image_bytes((256, 256))), ServiceConfig(id="s", provider="openai", canaries=["c"]),
                           CanaryConfig(id="c", prompt="p", size="256x256"))
    assert result.thumbnail
    back = result_from_dict(json.loads(json.dumps(spool_record(result))))
    assert back.thumbnail == result.thumbnail


def test_baseline_command(emulator, tmp_path, capsys):
    config = tmp_path / "genstatus.yaml"
    config.write_text(f"""
database: sqlite:///{tmp_path / 'cli.db'}
canaries:
  - {{id: fixed, prompt: "a red apple on a wooden table", size: 512x512, seed: 1234}}
services:
  - id: sd
    provider: automatic1111
    base_url: {emulator.base_url('automatic1111', service='cli-baseline')}
    canaries: [fixed]
    allow_private_network: true
""")
    assert main(["baseline", "sd", "--samples", "3", "--json", "-c", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    profile = out["profiles"][0]
    assert profile["stored"] and profile["references"] == 3 and profile["drift_checked"]
    assert set(profile["statistics"]) >= {"log_sharpness", "colourfulness", "entropy"}
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as connection:
        thumbs = connection.execute(select(ReferenceImageRow.thumbnail)).scalars().all()
    engine.dispose()
    assert len(thumbs) == 3 and all(t and t[:4] == b"RIFF" for t in thumbs)
    assert main(["baseline", "nope", "-c", str(config)]) == 2
    assert main(["baseline", "sd", "--canary", "other", "-c", str(config)]) == 2
    emulator.faults.set("automatic1111", "server_error", service="cli-baseline")
    assert main(["baseline", "sd", "--samples", "3", "-c", str(config)]) == 1
    assert "NOT stored" in capsys.readouterr().out


def test_provider_without_seeds_repeating_a_picture_is_stuck_even_for_a_fixed_seed_canary(emulator, engine):
    """OpenAI takes no seed: it draws a new picture every call, so the same one twice is a cache."""
    service = service_on(emulator, "openai", "stuck-noseed", model="dall-e-2")
    cfg, store, runner = setup(engine, service)
    try:
        store.record(runner.run(service, FIXED))
        normal = runner.run(service, FIXED)
        store.record(normal)
        emulator.faults.set("openai", "cached_image", service=service.id)
        store.record(runner.run(service, FIXED))
        second = runner.run(service, FIXED)
    finally:
        runner.close()
    assert normal.outcome is Outcome.OK, normal.error_detail
    assert "stuck_output" in second.quality_flags, second.quality_reasons
