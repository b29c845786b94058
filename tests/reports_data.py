"""Hand-built weekly report figures for the rendering, delivery, CLI and web tests of ``monitor.reports``.

The renderers are tested on these, apart from how the figures are computed (``tests/test_reports_figures``
checks those against raw rows).  ``hostile=True`` puts markup and mrkdwn into every free-text field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from monitor.reports.model import (
    ComparisonRow,
    DayFigures,
    GroupComparison,
    GroupWeek,
    IncidentRow,
    LatencyChange,
    LatencyPercentiles,
    ModelVersionChange,
    Notable,
    ServiceWeek,
    WeeklyReportData,
    WorstHour,
)

WEEK = "2026-W47"
START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(days=7)
HOSTILE_NAME = '<script>alert("x")</script> & <b>Flux</b> *bold* <!here> $5 | pipe'
HOSTILE_TITLE = '"><img src=x onerror=alert(1)> | `tick` [link](javascript:alert(1))'


def service(id: str, name: str, group: str, *, availability: float | None, p95: float | None, quality: float | None,
            **overrides: Any) -> ServiceWeek:
    counted = 10_080
    down = 0 if availability is None else round(counted * (100 - availability) / 100)
    fields: dict[str, Any] = dict(
        id=id, name=name, group=group, probes=counted + 12, counted=counted, down=down, degraded=40, operator_errors=12,
        regions=["eu-west", "us-east"], availability_pct=availability, slo_target_pct=99.5,
        availability_previous_pct=None if availability is None else min(100.0, availability + 0.02),
        slo_met=None if availability is None else availability >= 99.5,
        budget_window_availability_pct=availability, error_budget_used_pct=None if availability is None else
        round((100 - availability) / 0.5 * 100, 1),
        error_budget_left_pct=None if availability is None else round(100 - (100 - availability) / 0.5 * 100, 1),
        incidents=1 if availability is not None and availability < 99.9 else 0, downtime_s=5400.0 if
        availability is not None and availability < 99.9 else 0.0,
        longest_incident_s=5400.0 if availability is not None and availability < 99.9 else None,
        latency=LatencyPercentiles(p95 and p95 / 2, p95, p95 and p95 * 1.4),
        latency_previous=LatencyPercentiles(p95 and p95 / 2.2, p95 and p95 * 0.9, p95 and p95 * 1.3),
        latency_change=LatencyChange(p95 and p95 / 2 - p95 / 2.2, p95 and p95 * 0.1, p95 and p95 * 0.1,
                                     10.0 if p95 else None, 11.1 if p95 else None, 7.7 if p95 else None),
        latency_slo_p95_ms=20_000.0, latency_slo_met=None if p95 is None else p95 <= 20_000,
        quality_mean=quality, quality_min=quality and quality - 0.2, quality_scored=9000 if quality else 0,
        quality_slo_min=0.6, quality_slo_met=None if quality is None else quality >= 0.6,
        degraded_share_pct=0.4, drift_events=0, safety_blocks=2, cost=302.4, cost_budget=373.33,
        cost_budget_used_pct=81.0, successful=10_000, cost_per_success=0.03024,
    )
    fields.update(overrides)
    return ServiceWeek(**fields)


def days(service_id: str, availability: list[float | None], p95: float | None, quality: float | None) -> list[DayFigures]:
    out = []
    for i, pct in enumerate(availability):
        start = START + timedelta(days=i)
        latency = LatencyPercentiles(p95 and p95 / 2 + i * 100, p95 and p95 + i * 300, p95 and p95 * 1.4 + i * 300)
        out.append(DayFigures(day=date(2026, 11, 16) + timedelta(days=i), start=start, end=start + timedelta(days=1),
                              probes=1440, counted=1440 if pct is not None else 0,
                              down=0 if pct is None else round(1440 * (100 - pct) / 100), availability_pct=pct,
                              latency=latency, quality_mean=None if quality is None else quality - i * 0.01))
    return out


def incident(id: int, service: str | None, name: str | None, *, title: str, kind: str = "outage",
             audience: str = "public", hours: float | None = 1.5, detect_s: float = 95.0,
             start: datetime | None = None) -> IncidentRow:
    started = start or START + timedelta(days=2, hours=10)
    detected = started + timedelta(seconds=detect_s)
    resolved = None if hours is None else started + timedelta(hours=hours)
    return IncidentRow(
        id=id, service=service, service_name=name, kind=kind, audience=audience, impact="major",
        status="resolved" if resolved else "investigating", source="auto", title=title, started_at=started,
        detected_at=detected, resolved_at=resolved, duration_s=None if resolved is None else hours * 3600,
        time_to_detect_s=detect_s, time_to_resolve_s=None if resolved is None else (resolved - detected).total_seconds(),
        in_week_s=(hours or 24) * 3600, regions=["eu-west", "us-east"],
    )


def sample(*, hostile: bool = False, services: int = 3, complete: bool = True, **overrides: Any) -> WeeklyReportData:
    """Three services (two in one group), one outage, one operator incident; ``services`` > 3 adds more."""
    flux_name = HOSTILE_NAME if hostile else "FLUX.1 pro"
    title = HOSTILE_TITLE if hostile else "FLUX.1 pro: major outage"
    svcs = [
        service("dalle3", "DALL·E 3", "OpenAI", availability=99.95, p95=14_000.0, quality=0.91),
        service("flux", flux_name, "Black Forest Labs", availability=98.76, p95=9_000.0, quality=0.88),
        service("flux-dev", "FLUX.1 dev", "Black Forest Labs", availability=99.99, p95=6_000.0, quality=0.72),
    ]
    daily = {
        "dalle3": days("dalle3", [100.0, 99.9, 99.8, 100.0, 100.0, 99.95, 100.0], 14_000.0, 0.91),
        "flux": days("flux", [100.0, 99.0, 91.3, 100.0, 100.0, 99.5, 85.0], 9_000.0, 0.88),
        "flux-dev": days("flux-dev", [100.0, None, 99.99, 100.0, 100.0, 100.0, 100.0], 6_000.0, 0.72),
    }
    for n in range(3, services):
        sid = f"svc{n:02d}"
        svcs.append(service(sid, f"Service {n:02d}", "More", availability=99.0 + (n % 10) / 10, p95=3_000.0 + 500 * n,
                            quality=0.6 + (n % 7) / 20))
        daily[sid] = days(sid, [99.0 + ((n + i) % 10) / 10 for i in range(7)], 3_000.0 + 500 * n, 0.6 + (n % 7) / 20)
    groups = [
        GroupWeek(group="OpenAI", services=["dalle3"], probes=10_092, counted=10_080, down=5, availability_pct=99.95,
                  slo_met=1, slo_missed=0, incidents=0, downtime_s=0.0, cost=302.4, cost_budget=373.33),
        GroupWeek(group="Black Forest Labs", services=["flux", "flux-dev"], probes=20_184, counted=20_160, down=126,
                  availability_pct=99.375, slo_met=1, slo_missed=1, incidents=1, downtime_s=5400.0, cost=604.8,
                  cost_budget=746.66),
    ]
    comparisons = [GroupComparison(group="Black Forest Labs", rows=[
        ComparisonRow(service="flux-dev", name="FLUX.1 dev", availability_pct=99.99, latency_p95_ms=6_000.0,
                      quality_mean=0.72, cost_per_success=0.03024, probes=10_092),
        ComparisonRow(service="flux", name=flux_name, availability_pct=98.76, latency_p95_ms=9_000.0,
                      quality_mean=0.88, cost_per_success=0.03024, probes=10_092),
    ])]
    notable = Notable(
        model_versions=[ModelVersionChange(service="dalle3", version="dall-e-3-2026-11" if not hostile else HOSTILE_TITLE,
                                           first_seen=START + timedelta(days=3, hours=4), previous="dall-e-3-2026-10")],
        model_versions_known=True,
        worst_hour=WorstHour(service="flux", hour_start=START + timedelta(days=2, hours=10), down=42, counted=60,
                             availability_pct=30.0),
        notes=["Raw results older than 30 days are gone: model versions before that are unknown."],
    )
    fields: dict[str, Any] = dict(
        week=WEEK, start=START, end=END, timezone="UTC", generated_at=END + timedelta(hours=9),
        site_title="Image Generation Status", site_url="https://status.example.com", previous_week="2026-W46",
        budget_window_start=END - timedelta(days=30), services=svcs, groups=groups,
        incidents=[incident(41, "flux", flux_name, title=title)],
        operator_incidents=[incident(42, "dalle3", "DALL·E 3", title="dalle3: our API key was rejected",
                                     kind="operator", audience="operator", hours=0.5)],
        comparisons=comparisons, notable=notable, daily=daily, complete=complete,
    )
    fields.update(overrides)
    return WeeklyReportData(**fields)
