"""``genstatus baseline``: capture a (service, canary) reference profile from N sample runs.

The samples are real generations (they cost what a canary costs) and are not stored as probe
results: they would count in uptime twice.  Only samples that pass every check needing no
history become references; with fewer than ``min_good`` the stored profile is left as it was.

For a fixed-seed canary the samples should be the same picture (a provider that honours seeds
is deterministic).  If they are not, the provider does not reproduce seeds and drift cannot be
judged: the references are stored without their seed (``ReferenceProfile.drift_applies`` is
then never true) and the report says so.  "Reproduced" needs every sample to be generated: a
repeat answered from a cache (ComfyUI's ``execution_cached``) is not a healthy result but a
``probe_error`` (the adapter's call), so it is a failed sample here and can never count as a
reproduced seed.  For ``seed: random`` canaries, identical samples mean
the provider serves a cached picture: the profile is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy import Engine

from monitor.config import CanaryConfig, Config, ServiceConfig
from monitor.enums import HEALTHY_OUTCOMES
from monitor.scoring.pipeline import reference_entry
from monitor.scoring.profile import STATISTICS, ReferenceImage
from monitor.scoring.references import hash_distance
from monitor.store.references import save_profile

DEFAULT_SAMPLES = 5


@dataclass
class BaselineReport:
    service: str
    canary: str
    samples: int
    references: list[ReferenceImage] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stored: bool = False
    drift_checked: bool = False

    def to_dict(self) -> dict:
        medians = {}
        for name in STATISTICS:
            values = sorted(r.stats[name] for r in self.references if name in r.stats)
            if values:
                medians[name] = round(values[len(values) // 2], 4)
        return {"service": self.service, "canary": self.canary, "samples": self.samples,
                "references": len(self.references), "stored": self.stored, "drift_checked": self.drift_checked,
                "statistics": medians, "failures": self.failures, "notes": self.notes}


def capture(
    config: Config, service: ServiceConfig, canary: CanaryConfig, run: Callable, engine: Engine, *,
    samples: int = DEFAULT_SAMPLES, region: str = "default",
) -> BaselineReport:
    """``run(service, canary)`` -> a ``ResultRecord`` whose ``image`` is still attached (``keep_image=True``)."""
    quality = config.quality_of(service)
    report = BaselineReport(service.id, canary.id, samples)
    sizes, models = [], set()
    for number in range(1, samples + 1):
        result = run(service, canary)
        if result.outcome not in HEALTHY_OUTCOMES or result.image is None:
            report.failures.append(f"sample {number}: {result.outcome}: {result.error_detail or 'no image'}")
            continue
        entry = reference_entry(result.image, seed=result.seed, quality=quality)
        if entry is None:
            report.failures.append(f"sample {number}: not a usable picture")
            continue
        report.references.append(entry)
        sizes.append((result.image_width, result.image_height))
        models.add(result.model_version)
    min_good = min(3, samples)
    if len(report.references) < min_good:
        report.notes.append(f"only {len(report.references)} good samples of {samples} (need {min_good}): "
                            "stored profile left unchanged")
        return report
    _check_seeds(report, canary, quality.drift_bits, quality.stuck_bits)
    if report.references:
        save_profile(engine, service.id, canary.id, report.references, region=region, sizes=sizes,
                     model_version=models.pop() if len(models) == 1 else None)
        report.stored = True
    return report


def _check_seeds(report: BaselineReport, canary: CanaryConfig, drift_bits: int, stuck_bits: int) -> None:
    refs = report.references
    pairs = [hash_distance(a.hashes, b.hashes) for a, b in combinations(refs, 2)]
    spread = max((p for p in pairs if p is not None), default=0.0)
    seeds = {r.seed for r in refs}
    if isinstance(canary.seed, int) and seeds == {canary.seed}:
        if spread > drift_bits:
            report.notes.append(f"the provider does not reproduce seed {canary.seed} (samples up to {spread:g} bits "
                                "apart): drift is not judged for this canary, only its statistics")
            for ref in refs:
                ref.seed = None
        else:
            report.drift_checked = True
            report.notes.append(f"fixed seed {canary.seed} reproduced (samples within {spread:g} bits): "
                                "drift will be judged")
        return
    if len(seeds - {None}) > 1 or canary.seed == "random":
        same = [p for p in pairs if p is not None and p <= stuck_bits]
        if same and len(same) == len(pairs):
            report.notes.append("every sample is the same picture although the seeds differ: the provider serves a "
                                "cached image; profile not stored")
            report.references.clear()
            return
    if seeds == {None}:
        report.notes.append("the provider takes no seed, so every output is a new picture: drift is not judged; "
                            "outputs are compared with the canary's statistics")
    else:
        report.notes.append("no fixed seed: drift is not judged; outputs are compared with the canary's statistics")
