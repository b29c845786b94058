"""``genstatus replay``: run detection over a JSON Lines trace (docs/contracts.md, replay).

Each trace line is one probe result::

    {"ts": "2026-11-02T10:05:00Z", "service": "dalle3", "region": "eu-west", "canary": "still-life",
     "outcome": "timeout", "latency_ms": 180000, "quality": null, "http_status": null}

Optional fields: ``"kind": "confirmation"`` marks a confirmation run and ``"kind": "health"`` a
health check (its failures count as evidence, its successes do not); ``"detail"`` is an error text.
The replay feeds the results in ``ts`` order to the same ``detect`` function the live
coordinator runs, once per distinct timestamp, and reports every incident it would open.
Each service's background noise is counted as the replay goes, the way the coordinator counts
it from the database: results older than the detector's lookback, within the last 7 days,
outside incidents of the same kind.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.detection.background import BackgroundCounter
from monitor.detection.detect import Action, DetectorConfig, Incident, Observation, Transition, detect, order_key
from monitor.enums import IMPACT_RANK, Impact, IncidentKind, Outcome


class TraceError(ValueError):
    """A malformed trace line; the message names the file and line."""


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # older timestamps cannot be probe results (and overflow date arithmetic)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # far-future ones are typos, and date arithmetic near year 9999 overflows
MAX_LINE = 2**20  # a record is a few hundred bytes: a longer line is not one, and is not read into memory whole
KINDS = ("canary", "confirmation", "health")


class _OutOfRange(ValueError):
    """A well-formed time that no probe result can have."""


def parse_time(text: str) -> datetime:
    if not text.isprintable():  # CPython ignores a trailing NUL
        raise ValueError(f"{text!r} holds control characters")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is in year 0 in UTC
        raise _OutOfRange("out of range") from None
    if value < EARLIEST:
        raise _OutOfRange("before 1970")
    if value >= LATEST:
        raise _OutOfRange(f"after {LATEST.year - 1}")
    return value


def _shown(value: Any) -> str:
    """``repr`` cut short: a bad value is quoted in the error, and may be a megabyte long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _text(record: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field (null or absent allowed unless ``required``); raises ``ValueError`` naming it."""
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {name!r}")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but cannot be printed
        raise ValueError(f"{name} is not valid Unicode: {_shown(value)}") from None
    return value


def _number(record: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or null, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not low <= number <= high:  # also refuses NaN and Infinity, which Python's JSON reads
        raise ValueError(f"{name} must be a number from {low:g} to {high:g} or null, got {_shown(value)}")
    return number


def observation_from(record: dict[str, Any]) -> Observation:
    """One trace record as an observation; raises ``ValueError`` naming the bad field."""
    for name in ("ts", "service", "region", "outcome"):
        if record.get(name) in (None, ""):
            raise ValueError(f"missing {name!r}")
    stamp = record["ts"]
    if not isinstance(stamp, str):  # a number would be read as a basic-format date (20261102)
        raise ValueError(f"invalid ts {_shown(stamp)} (use an ISO 8601 string, e.g. 2026-11-02T10:05:00Z)")
    try:
        ts = parse_time(stamp)
    except _OutOfRange as exc:
        raise ValueError(f"invalid ts {_shown(stamp)}: {exc}") from None
    except ValueError:
        raise ValueError(f"invalid ts {_shown(stamp)} (use ISO 8601, e.g. 2026-11-02T10:05:00Z)") from None
    try:
        outcome = Outcome(record["outcome"])
    except ValueError:
        raise ValueError(f"unknown outcome {_shown(record['outcome'])} (known: {', '.join(o.value for o in Outcome)})") from None
    kind = _text(record, "kind")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {_shown(kind)} (known: {', '.join(KINDS)})")
    status = record.get("http_status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999):
        raise ValueError(f"http_status must be an HTTP status code or null, got {_shown(status)}")
    return Observation(
        ts=ts,
        service=_text(record, "service", required=True) or "",
        region=_text(record, "region", required=True) or "",
        outcome=outcome,
        canary=_text(record, "canary"),
        latency_ms=_number(record, "latency_ms", 0, 1e12),  # 1e12 ms: thirty years
        quality=_number(record, "quality", 0, 1),
        confirmation=kind == "confirmation",
        health=kind == "health",
        detail=_text(record, "detail"),
    )


def _record(raw: bytes, number: int) -> dict[str, Any] | None:
    """The JSON object on one line (None for a blank line); raises ``ValueError`` saying what is wrong."""
    if len(raw) > MAX_LINE:
        raise ValueError(f"longer than {MAX_LINE // 2**10} KB: not a trace record")
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, as some Windows editors write
    line = raw.decode("utf-8")
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"not JSON: {str(exc).split(';')[0]}") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    return record


def read_trace(path: str | Path) -> list[Observation]:
    """All results of a trace file, in ``ts`` order; a bad line raises ``TraceError`` naming it,
    and so does a trace without a single result (an empty file is the wrong file)."""
    observations = []
    number = 0
    with Path(path).open("rb") as lines:
        while raw := lines.readline(MAX_LINE + 1):
            number += 1
            try:
                record = _record(raw, number)
                if record is not None:
                    observations.append(observation_from(record))
            except UnicodeDecodeError as exc:
                raise TraceError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the line)") from None
            except RecursionError:
                raise TraceError(f"{path}:{number}: nested too deeply to be a trace record") from None
            except (ValueError, OverflowError) as exc:
                raise TraceError(f"{path}:{number}: {exc}") from None
    if not observations:
        raise TraceError(f"{path}:{max(number, 1)}: no results: the trace is empty or holds only blank lines")
    return sorted(observations, key=order_key)


@dataclass
class IncidentRecord:
    """One incident as ``replay --json`` prints it."""

    service: str | None
    kind: str
    audience: str
    impact: str
    regions: list[str]
    started_at: datetime
    detected_at: datetime
    resolved_at: datetime | None = None
    evidence: int | None = None  # bad results in a row it took to open
    updates: list[dict[str, str | None]] = field(default_factory=list)

    def to_dict(self, with_updates: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "kind": self.kind,
            "audience": self.audience,
            "impact": self.impact,
            "regions": self.regions,
            "started_at": _iso(self.started_at),
            "detected_at": _iso(self.detected_at),
            "resolved_at": _iso(self.resolved_at),
            "evidence_results": self.evidence,
        }
        if with_updates:
            data["updates"] = self.updates
        return data


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _batches(observations: Iterable[Observation]) -> Iterator[tuple[datetime, list[Observation]]]:
    batch: list[Observation] = []
    for obs in observations:
        if batch and obs.ts != batch[0].ts:
            yield batch[0].ts, batch
            batch = []
        batch.append(obs)
    if batch:
        yield batch[0].ts, batch


def replay(observations: Iterable[Observation], config: DetectorConfig | None = None) -> list[IncidentRecord]:
    """Every incident the detector opens over the trace, in the order they were opened."""
    config = config or DetectorConfig()
    lookback = config.lookback()
    window: deque[Observation] = deque()
    background = BackgroundCounter(config)
    open_incidents: dict[tuple, tuple[Incident, IncidentRecord]] = {}
    resolved: dict[tuple, tuple[Incident, IncidentRecord]] = {}
    records: list[IncidentRecord] = []
    by_service: dict[str | None, list[IncidentRecord]] = {}
    for now, batch in _batches(sorted(observations, key=order_key)):
        window.extend(batch)
        while window and window[0].ts < now - lookback:
            leaving = window.popleft()  # out of the detector's sight: it joins the background
            background.add(leaving, _kinds_in_incident(leaving, by_service.get(leaving.service, [])))
        background.forget_before(now - background.window)
        known = [incident for incident, _ in open_incidents.values()] + [incident for incident, _ in resolved.values()]
        transitions = detect(window, known, config, now, focus={o.service for o in batch}, background=background)
        for transition in transitions:
            if _apply(transition, open_incidents, resolved, records):
                by_service.setdefault(transition.incident.service, []).append(records[-1])
    return records


def _kinds_in_incident(obs: Observation, records: list[IncidentRecord]) -> set[IncidentKind]:
    """The kinds of incident of ``obs.service`` that cover its time (their results are not noise)."""
    return {IncidentKind(record.kind) for record in records
            if record.started_at <= obs.ts and (record.resolved_at is None or obs.ts <= record.resolved_at)}


def _apply(transition: Transition, open_incidents: dict, resolved: dict, records: list[IncidentRecord]) -> bool:
    """Record the transition; True when it opened a new incident."""
    incident = transition.incident
    update = {"action": transition.action.value, "at": _iso(transition.at), "status": incident.status.value,
              "body": transition.message}
    if transition.action is Action.OPEN:
        record = IncidentRecord(incident.service, incident.kind.value, incident.audience.value, incident.impact.value,
                                list(incident.regions), incident.started_at, incident.detected_at,
                                evidence=transition.evidence, updates=[update])
        records.append(record)
        open_incidents[incident.key] = (incident, record)
        return True
    if transition.action is Action.REOPEN:
        _, record = resolved.pop(incident.key)
        record.resolved_at = None
    else:
        _, record = open_incidents[incident.key]
    record.updates.append(update)
    record.regions = sorted(set(record.regions) | set(incident.regions))
    if IMPACT_RANK[incident.impact] > IMPACT_RANK[Impact(record.impact)]:
        record.impact = incident.impact.value  # the report shows the worst impact the incident reached
    if transition.action is Action.RESOLVE:
        record.resolved_at = incident.resolved_at
        del open_incidents[incident.key]
        resolved[incident.key] = (incident, record)
    else:
        open_incidents[incident.key] = (incident, record)
    return False
