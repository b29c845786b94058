"""What each result says about each kind of incident, and the evidence per region."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.detection.model import Observation, ServiceRules
from monitor.enums import (
    DOWN_OUTCOMES,
    HEALTHY_OUTCOMES,
    IMAGE_OUTCOMES,
    OPERATOR_OUTCOMES,
    Audience,
    IncidentKind,
    Outcome,
)

#: per kind: outcomes that are bad, outcomes that are good; everything else says nothing
EVIDENCE: dict[IncidentKind, tuple[frozenset[Outcome], frozenset[Outcome]]] = {
    IncidentKind.OUTAGE: (DOWN_OUTCOMES, IMAGE_OUTCOMES | {Outcome.CONTENT_FILTERED}),
    IncidentKind.QUALITY: (frozenset({Outcome.DEGRADED_QUALITY}), HEALTHY_OUTCOMES),
    IncidentKind.SAFETY: (frozenset({Outcome.CONTENT_FILTERED}), IMAGE_OUTCOMES),
    IncidentKind.OPERATOR: (OPERATOR_OUTCOMES, frozenset(Outcome) - OPERATOR_OUTCOMES),
}
#: kinds that only the operator sees (everything else is public)
AUDIENCE = {IncidentKind.OPERATOR: Audience.OPERATOR, IncidentKind.AGENT: Audience.OPERATOR}

#: kind -> outcome -> True (bad), False (good); outcomes missing say nothing about the kind
VERDICTS: dict[IncidentKind, dict[Outcome, bool]] = {
    kind: {**{o: False for o in good}, **{o: True for o in bad}} for kind, (bad, good) in EVIDENCE.items()
}


#: kinds a failed health check is evidence of (a passing one proves nothing: the API answers, but does it draw?)
HEALTH_EVIDENCE = (IncidentKind.OUTAGE, IncidentKind.OPERATOR)


def verdict(kind: IncidentKind, obs: Observation, rules: ServiceRules) -> bool | None:
    """True = bad, False = good, None = says nothing about this kind."""
    found = VERDICTS[kind].get(obs.outcome)
    if obs.health:
        return True if found is True and kind in HEALTH_EVIDENCE else None
    if found is False and kind is IncidentKind.QUALITY and rules.min_quality is not None and obs.quality is not None:
        return obs.quality < rules.min_quality
    return found


@dataclass
class RegionEvidence:
    """One region's recent results for one service and kind, newest last."""

    verdicts: list[tuple[Observation, bool]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return bool(self.verdicts) and self.verdicts[-1][1]

    def streak(self) -> list[Observation]:
        """The bad results at the end, oldest first."""
        run: list[Observation] = []
        for obs, bad in reversed(self.verdicts):
            if not bad:
                break
            run.append(obs)
        return run[::-1]

    def good_run(self) -> int:
        count = 0
        for _, bad in reversed(self.verdicts):
            if bad:
                break
            count += 1
        return count

    def last_bad(self) -> datetime | None:
        return next((obs.ts for obs, bad in reversed(self.verdicts) if bad), None)


def region_evidence(kind: IncidentKind, obs: Sequence[Observation], rules: ServiceRules) -> dict[str, RegionEvidence]:
    regions: dict[str, RegionEvidence] = defaultdict(RegionEvidence)
    for o in obs:
        said = verdict(kind, o, rules)
        if said is not None:
            regions[o.region].verdicts.append((o, said))
    return regions


