"""Each service's background noise, and how much evidence an opening needs against it.

Two failures in a row mean little for a provider that fails 5 % of its runs and a lot for one
that never fails.  So the detector estimates, per service, region and kind of incident, from
the results of the last ``WINDOW`` that fell outside incidents of that kind:

* the *failure rate*: how often a result is bad;
* the *repeat rate*: how often the result right after a failure is bad too (noise comes in
  bursts: a confirmation run 20 s after a hiccup often fails as well).  Each run of failures
  counts once, so a long run -- an outage that was never posted -- cannot teach the detector
  that failures always repeat.

Both are kept per class of bad outcome -- ``BURSTY_OUTCOMES`` (timeouts) apart from the other
errors -- so a service whose noise is timeouts needs more timeouts, but few connection errors,
before it opens.  New services start from a prior (1 % failures, 5 % repeats), and every
rate is taken one standard deviation above its estimate, so little history means caution.

The chance that noise alone produces a bad streak is the product, over its results, of how
often noise gives that result -- the first at the failure rate, the others at the repeat rate
(of confirmations or of scheduled runs) -- each divided by the share of an outage's results we
expect in that class (half like the noise, half even).  That is a likelihood ratio whose mean
under noise is 1, so the chance is a bound however the classes split.  A streak is
*significant* when that chance is below what the budget allows: ``false_incident_budget`` per
90 days, shared out over every streak that could start in 90 days (scheduled runs x regions).
A streak that spans ``MAX_STREAK_RUNS`` scheduled runs is significant whatever the noise.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.config.durations import format_duration
from monitor.detection.evidence import EVIDENCE, verdict
from monitor.detection.model import MAX_STREAK_RUNS, DetectorConfig, Observation
from monitor.enums import BURSTY_OUTCOMES, IncidentKind

WINDOW = timedelta(days=7)
BUDGET_PERIOD = timedelta(days=90)
#: kinds judged against their background; operator problems (a revoked key) are not noisy
NOISY_KINDS = (IncidentKind.OUTAGE, IncidentKind.QUALITY, IncidentKind.SAFETY)
#: the prior, as pseudo-results: 0.5 bad in 50 (1 %), 0.5 repeats in 10 results after a bad one (5 %); with the
#: uncertainty added (``_upper``) a new service is judged as if it failed 2.4 % of its runs and repeated 12 %
PRIOR_RUNS, PRIOR_BAD = 50.0, 0.5
PRIOR_AFTER_BAD, PRIOR_REPEATS = 10.0, 0.5
UNCERTAINTY = 1.0  # standard deviations added to each estimated rate
OTHER = "other"

Key = tuple[str, str, IncidentKind]  # service, region, kind


def classes_of(kind: IncidentKind) -> tuple[str, ...]:
    """The classes a bad result of this kind falls in (timeouts apart, for outages)."""
    bad = EVIDENCE[kind][0]
    return (OTHER, *sorted(o.value for o in BURSTY_OUTCOMES if o in bad))


def outcome_class(obs: Observation) -> str:
    return obs.outcome.value if obs.outcome in BURSTY_OUTCOMES else OTHER


@dataclass
class Background:
    """Counts of one service, region and kind over the window, outside incidents.

    Repeats are kept apart for confirmation runs (seconds after the failure before) and for
    scheduled runs (an interval later): noise that repeats 20 s later often has gone by the next
    round.
    """

    runs: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    after_bad: Counter[bool] = field(default_factory=Counter)  # results right after a bad one, by "is a confirmation"
    repeats: Counter[tuple[bool, str]] = field(default_factory=Counter)  # ... that were bad too, by class

    def rate(self, cls: str, classes: Sequence[str]) -> float:
        """How often a result fails in this class: the failure rate, shared out like the noise."""
        return self.failure_rate * self.noise_share(cls, classes)

    def repeat_rate(self, cls: str, classes: Sequence[str], confirmation: bool) -> float:
        """How often a result right after a failure fails in this class.  Its prior is shared out like
        the noise (a class the noise never shows is not expected to repeat either).  Never below the
        failure rate: a failure does not make the next one less likely (few pairs with no repeat say little)."""
        total = sum(n for (conf, _), n in self.repeats.items() if conf is confirmation)
        share = (self.repeats[(confirmation, cls)] + PRIOR_REPEATS * self.noise_share(cls, classes)) / (total + PRIOR_REPEATS)
        return max(self.overall_repeat_rate(confirmation) * share, self.rate(cls, classes))

    def noise_share(self, cls: str, classes: Sequence[str]) -> float:
        """The share of the noise's bad results that fall in this class."""
        return (self.bad[cls] + PRIOR_BAD / len(classes)) / (sum(self.bad.values()) + PRIOR_BAD)

    def share(self, cls: str, classes: Sequence[str]) -> float:
        """What share of an outage's bad results we expect in this class: half like the noise, half even.

        Judging a streak by ``rate / share`` per result is a likelihood ratio against noise whose
        mean under noise is 1, so the chance it reports is a bound (Markov), whatever the classes.
        """
        return 0.5 * self.noise_share(cls, classes) + 0.5 / len(classes)

    @property
    def failure_rate(self) -> float:
        return _upper(sum(self.bad.values()) + PRIOR_BAD, self.runs + PRIOR_RUNS)

    def overall_repeat_rate(self, confirmation: bool) -> float:
        repeats = sum(n for (conf, _), n in self.repeats.items() if conf is confirmation)
        return max(self.failure_rate, _upper(repeats + PRIOR_REPEATS, self.after_bad[confirmation] + PRIOR_AFTER_BAD))


def _upper(hits: float, trials: float) -> float:
    """A cautious estimate of a rate: the mean plus ``UNCERTAINTY`` standard deviations (of the Beta
    posterior), so a service with little history is not taken for a quiet one."""
    mean = hits / trials
    return min(1.0, mean + UNCERTAINTY * math.sqrt(mean * (1 - mean) / (trials + 1)))


Entry = tuple[datetime, Key, str | None, bool, bool]  # ts, key, bad class (None: good), after a bad one, confirmation


class BackgroundCounter:
    """Sliding-window counts, fed results in time order (replay as it goes, the coordinator from the database)."""

    def __init__(self, config: DetectorConfig, window: timedelta = WINDOW) -> None:
        self.config = config
        self.window = window
        self._counts: dict[Key, Background] = {}
        self._streak: dict[Key, int | None] = {}  # bad results in a row up to the last counted one (None: unknown)
        self._log: deque[Entry] = deque()

    def add(self, obs: Observation, excluded: Container[IncidentKind] = ()) -> None:
        """Count one result; ``excluded`` are the kinds with an incident open at its time."""
        rules = self.config.rules(obs.service)
        for kind in NOISY_KINDS:
            said = verdict(kind, obs, rules)
            if said is None:
                continue
            key = (obs.service, obs.region, kind)
            if kind in excluded:
                self._streak[key] = None
                continue
            streak = self._streak.get(key)
            # only the result after a streak's first failure is a pair: a long run of failures (an outage
            # that was never posted, say) counts once, and cannot teach the detector that failures repeat
            after_bad = streak == 1
            entry = (obs.ts, key, outcome_class(obs) if said else None, after_bad, obs.confirmation)
            self._count(entry, +1)
            self._log.append(entry)
            self._streak[key] = (streak or 0) + 1 if said else 0

    def forget_before(self, ts: datetime) -> None:
        while self._log and self._log[0][0] < ts:
            self._count(self._log.popleft(), -1)

    def _count(self, entry: Entry, sign: int) -> None:
        _, key, cls, after_bad, confirmation = entry
        counts = self._counts.setdefault(key, Background())
        counts.runs += sign
        if cls is not None:
            counts.bad[cls] += sign
        if after_bad:
            counts.after_bad[confirmation] += sign
            if cls is not None:
                counts.repeats[(confirmation, cls)] += sign

    def of(self, service: str, region: str, kind: IncidentKind) -> Background:
        return self._counts.get((service, region, kind)) or Background()


@dataclass(frozen=True)
class Judgement:
    """How unlikely a bad streak is as noise, against what the false-incident budget allows."""

    results: int
    scheduled: int
    span: timedelta
    chance: float
    allowed: float
    background: Background
    outcomes: tuple[tuple[str, int], ...]

    @property
    def significant(self) -> bool:
        return self.chance <= self.allowed or self.scheduled >= MAX_STREAK_RUNS

    def explain(self) -> str:
        """The evidence in one sentence, for the incident's first update."""
        seen = ", ".join(f"{name} {count}" for name, count in self.outcomes)
        bg = self.background
        history = (f"{bg.runs} results in the last {WINDOW.days} days outside incidents" if bg.runs >= PRIOR_RUNS
                   else f"too little history ({bg.runs} results), so a cautious assumed background")
        why = (f"{self.results} failures in {format_duration(self.span) if self.span else 'one moment'} ({seen}), against a "
               f"background of up to {_percent(bg.failure_rate)} failures, of which up to "
               f"{_percent(bg.overall_repeat_rate(True))} failed again on their confirmation and "
               f"{_percent(bg.overall_repeat_rate(False))} on the next scheduled run ({history}): about 1 in 10^{_exponent(self.chance)} by chance, where the false-incident budget "
               f"asks for 1 in 10^{_exponent(self.allowed)}")
        if self.chance > self.allowed and self.significant:
            why += f"; open anyway after {self.scheduled} scheduled runs in a row"
        return why + "."


def judge(kind: IncidentKind, streak: Sequence[Observation], background: Background, *, interval: timedelta,
          canaries: int, regions: int, budget: float) -> Judgement:
    """Judge a bad streak (oldest first) of one service in one region."""
    classes = classes_of(kind)
    chance = 1.0
    for index, obs in enumerate(streak):
        cls = outcome_class(obs)
        noise = background.rate(cls, classes) if index == 0 else background.repeat_rate(cls, classes, obs.confirmation)
        chance *= noise / background.share(cls, classes)
    starts = BUDGET_PERIOD / interval * max(1, canaries) * max(1, regions)
    outcomes = Counter(obs.outcome.value for obs in streak).most_common()
    return Judgement(results=len(streak), scheduled=sum(1 for o in streak if not (o.confirmation or o.health)),
                     span=streak[-1].ts - streak[0].ts if streak else timedelta(0), chance=min(1.0, chance),
                     allowed=budget / starts, background=background, outcomes=tuple(outcomes))


def _percent(rate: float) -> str:
    return f"{rate:.1%}" if rate >= 0.001 else f"{rate:.2%}"


def _exponent(chance: float) -> str:
    return f"{-math.log10(chance):.1f}" if chance > 0 else "inf"
