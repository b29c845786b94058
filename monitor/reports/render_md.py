"""The weekly report as Markdown (GitHub-flavoured tables) for chat and wikis, and as the email's text part.

Free text from providers or operators (service names, incident titles, model versions) is escaped:
it can neither start markup, links or HTML nor break a table with ``|``.  ``internal=False`` leaves
out the operator incidents, as the HTML does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitor.reports import display as fmt
from monitor.reports.model import IncidentRow, ServiceWeek, WeeklyReportData

#: CommonMark lets a backslash escape any ASCII punctuation; these are the ones that can start something
#: inside a line (a link needs "[", an image "![", raw HTML "<", maths "$" on some sites)
_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~$])")


def escape(text: str | None) -> str:
    """Free text as literal Markdown on one line."""
    return _SPECIAL.sub(r"\\\1", fmt.one_line(text))


def code(text: str | None) -> str:
    """Free text in a code span: backticks inside cannot close it; a ``|`` is escaped for tables."""
    value = fmt.one_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence} {value.replace('|', chr(92) + '|')} {fence}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render_md(data: WeeklyReportData, *, internal: bool = True) -> str:
    lines = [f"# {escape(data.site_title)}: weekly reliability report {data.week}", "",
             f"{fmt.week_range(data)}, {escape(data.timezone)} · compared with {data.previous_week}", ""]
    if not data.complete:
        lines += [f"> This week is not over: the figures run to {fmt.local_time(data.generated_at, data.timezone)}.", ""]
    lines += [f"- {sentence}" for sentence in fmt.overview(data, name=escape)]
    url = fmt.report_url(data)
    if url:
        lines += ["", f"Full report with charts: <{url}>"]
    lines += ["", "## Availability and incidents", ""]
    lines += summary_table(data.services, data.previous_week)
    lines += ["", "## Latency", ""]
    lines += table(
        ["Service", "p50", "p95", "p99", f"p95 vs {data.previous_week}", "p95 SLO"],
        ([escape(s.name), fmt.latency(s.latency.p50_ms), f"**{fmt.latency(s.latency.p95_ms)}**",
          fmt.latency(s.latency.p99_ms), fmt.change(s.latency_change.p95_pct),
          f"{fmt.slo_word(s.latency_slo_met)} ({fmt.latency(s.latency_slo_p95_ms)})" if s.latency_slo_p95_ms else "none set"]
         for s in data.services),
        [False, True, True, True, True, False])
    lines += ["", "## Quality, safety and cost", ""]
    lines += table(
        ["Service", "Quality (mean)", "Degraded", "Drift events", "Safety blocks", "Probes", "Cost", "of budget"],
        ([escape(s.name), fmt.score(s.quality_mean), fmt.percent(s.degraded_share_pct, 1), str(s.drift_events),
          str(s.safety_blocks), fmt.count(s.probes), fmt.money(s.cost), fmt.percent(s.cost_budget_used_pct)]
         for s in data.services),
        [False, True, True, True, True, True, True, True])
    lines += ["", "## Incidents", ""]
    lines += incident_table(data.incidents, data.timezone) if data.incidents else ["No public incidents this week."]
    if data.comparisons:
        lines += ["", "## Providers side by side", ""]
        for comparison in data.comparisons:
            lines += [f"**{escape(comparison.group or 'Other services')}**", ""]
            lines += table(["Service", "Availability", "p95", "Quality", "Cost per good image"],
                           ([escape(r.name), fmt.availability(r.availability_pct), fmt.latency(r.latency_p95_ms),
                             fmt.score(r.quality_mean), fmt.money(r.cost_per_success)] for r in comparison.rows),
                           [False, True, True, True, True])
            lines.append("")
        lines.pop()
    lines += ["", "## Notable", ""]
    lines += notable(data)
    if internal and data.operator_incidents:
        lines += ["", "## Operator incidents", "",
                  "Our side or our credentials: never on the status page and not counted in availability.", ""]
        lines += incident_table(data.operator_incidents, data.timezone)
    lines += ["", f"_Generated {fmt.local_time(data.generated_at, data.timezone)} by genstatus._"]
    return "\n".join(lines) + "\n"


def summary_table(services: Sequence[ServiceWeek], previous_week: str) -> list[str]:
    """Availability, SLO, error budget and incidents per service (also the Slack summary's source)."""
    return table(
        ["Service", "Availability", f"vs {previous_week}", "SLO", "Budget left (30 d)", "Incidents", "Downtime"],
        ([escape(s.name), f"**{fmt.availability(s.availability_pct)}**", fmt.points(_delta(s)),
          f"{fmt.slo_word(s.slo_met)} ({s.slo_target_pct:g}%)", fmt.percent(s.error_budget_left_pct), str(s.incidents),
          fmt.duration(s.downtime_s) if s.downtime_s else fmt.NONE] for s in services),
        [False, True, True, False, True, True, True])


def incident_table(rows: Sequence[IncidentRow], timezone: str) -> list[str]:
    return table(
        ["Incident", "Service", "Kind", "Started", "Duration", "To detect", "To resolve", "Regions"],
        ([escape(i.title), escape(i.service_name or i.service or "all services"), f"{i.kind}, {i.impact}",
          fmt.local_time(i.started_at, timezone), fmt.duration(i.duration_s) if i.duration_s is not None else "open",
          fmt.duration(i.time_to_detect_s),
          fmt.duration(i.time_to_resolve_s) if i.time_to_resolve_s is not None else "open",
          escape(", ".join(i.regions)) or fmt.NONE] for i in rows),
        [False, False, False, False, True, True, True, False])


def notable(data: WeeklyReportData) -> list[str]:
    names = {s.id: s.name for s in data.services}
    out = []
    worst = data.notable.worst_hour
    if worst:
        out.append(f"- Worst hour: {escape(names.get(worst.service, worst.service))}, "
                   f"{fmt.local_time(worst.hour_start, data.timezone)}: {worst.down} of {worst.counted} runs down "
                   f"({fmt.availability(worst.availability_pct)} available).")
    if not data.notable.model_versions_known:
        out.append("- Model versions: unknown for this week (its raw results are no longer kept).")
    elif data.notable.model_versions:
        for m in data.notable.model_versions:
            before = f" (before: {code(m.previous)})" if m.previous else ""
            out.append(f"- {escape(names.get(m.service, m.service))} reported model version {code(m.version)}{before} "
                       f"from {fmt.local_time(m.first_seen, data.timezone)}.")
    else:
        out.append("- No new model versions reported.")
    if data.notable.budget_overruns_avoided:
        out += [f"- {escape(line)}" for line in data.notable.budget_overruns_avoided]
    elif not data.notable.budget_overruns_recorded:
        out.append("- Budget overruns avoided: not recorded (the probe interval is stretched to the budget at start-up).")
    out += [f"- _{escape(note)}_" for note in data.notable.notes]
    return out


def _delta(service: ServiceWeek) -> float | None:
    if service.availability_pct is None or service.availability_previous_pct is None:
        return None
    return service.availability_pct - service.availability_previous_pct
