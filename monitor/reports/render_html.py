"""The weekly report as one HTML document that mail clients and browsers both show well.

Mail clients drop ``<style>`` sheets, scripts and external resources, and many lay out only tables:
so every style is inline, the layout is tables at most ``WIDTH`` px wide, and nothing is fetched.
One template serves every use; ``images`` switches how the charts are referenced:

* ``"cid"`` -- ``cid:<name>.<week>@genstatus``, the email's inline parts (``chart_cid``);
* ``"files"`` -- ``<prefix><name>.png`` next to the written file (``genstatus report --output``);
* ``"inline"`` -- ``data:`` URIs: one self-contained document, as archived and served at /reports/<week>.

``internal=False`` leaves out what the public status page never shows (operator incidents, our own
errors); the archived copy is rendered that way, since /reports may be public.  Every value is
escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from monitor.reports import display
from monitor.reports.charts import Chart
from monitor.reports.model import GroupComparison, GroupWeek, IncidentRow, ServiceWeek, WeeklyReportData

ImageMode = Literal["cid", "files", "inline"]
WIDTH = 720

TEMPLATE = """\
{%- set font = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;" -%}
{%- set th = "border-bottom:2px solid #dadce0;font-size:12px;color:#5f6368;font-weight:600;vertical-align:bottom" -%}
{%- set grp = "padding-top:12px;font-weight:700;border-bottom:1px solid #dadce0" -%}
{%- set h2 = "margin:28px 0 8px;font-size:18px;color:#202124;" -%}
{%- set muted = "color:#5f6368;font-size:12px;" -%}
{%- set red, green, grey = "#c5221f", "#188038", "#5f6368" -%}
{#- Cells carry as little markup as possible: a big fleet's email stays small (Gmail clips an HTML part
    over ~100 KB).  Padding comes from the table's cellpadding, alignment from align/nowrap, rows are
    striped with bgcolor. -#}
{%- macro num(value, colour=none, bold=false) -%}
<td align="right" nowrap{% if colour or bold %} style="{% if colour %}color:{{ colour }};{% endif %}{% if bold %}font-weight:600{% endif %}"{% endif %}>{{ value }}</td>
{%- endmacro -%}
{%- macro verdict(met) -%}
{%- if met is true %}<span style="color:{{ green }};font-weight:600">✓ met</span>
{%- elif met is false %}<span style="color:{{ red }};font-weight:600">✗ missed</span>
{%- else %}<span style="color:{{ grey }}">no data</span>{% endif -%}
{%- endmacro -%}
{%- macro table_start() -%}
<table role="presentation" width="100%" cellpadding="5" cellspacing="0" style="border-collapse:collapse;font-size:13px">
{%- endmacro -%}
{%- macro heads(names) -%}
<tr>{% for name in names %}<th align="{{ 'left' if loop.first or name.endswith('SLO') else 'right' }}" style="{{ th }}">{{ name }}</th>{% endfor %}</tr>
{%- endmacro -%}
{%- macro group_header(g, cols) -%}
<tr><td colspan="{{ cols }}" style="{{ grp }}">{{ g.group or "Other services" }}</td></tr>
{%- endmacro -%}
{%- macro row(loop) %}<tr{% if loop.index is even %} bgcolor="#f8f9fa"{% endif %}>{% endmacro -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{{ title }}</title>
</head>
<body style="margin:0;padding:0;background:#f1f3f4;{{ font }}color:#202124">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;background:#f1f3f4">
<tr><td align="center" style="padding:16px 8px">
<table role="presentation" width="{{ width }}" cellpadding="0" cellspacing="0" style="width:100%;max-width:{{ width }}px;border-collapse:collapse;background:#ffffff;border:1px solid #dadce0">
<tr><td style="padding:20px 24px 8px;{{ font }}">
{%- if back %}
<p style="margin:0 0 12px;font-size:13px"><a href="{{ back }}" style="color:#1a73e8">← All reports</a></p>
{%- endif %}
<div style="{{ muted }}text-transform:uppercase;letter-spacing:.05em">{{ d.site_title }} · weekly reliability report</div>
<h1 style="margin:4px 0 0;font-size:24px;line-height:1.25;color:#202124">Week {{ d.week }}: {{ fmt.week_range(d) }}</h1>
<div style="{{ muted }}margin-top:4px">Monday 00:00 to Monday 00:00, {{ d.timezone }} · compared with {{ d.previous_week }}</div>
{%- if not d.complete %}
<p style="margin:12px 0 0;padding:8px 12px;background:#fef7e0;border-left:4px solid #f29900;font-size:13px">This week is not over: the figures run to {{ fmt.local_time(d.generated_at, d.timezone) }}.</p>
{%- endif %}
<ul style="margin:16px 0 0;padding-left:20px;font-size:15px;line-height:1.5">
{%- for sentence in overview %}<li>{{ sentence }}</li>{% endfor %}
</ul>
{%- if url %}
<p style="margin:12px 0 0;font-size:13px"><a href="{{ url }}" style="color:#1a73e8">Open this report on the status site</a></p>
{%- endif %}

<h2 style="{{ h2 }}">Availability and incidents</h2>
{{ table_start() }}
{{ heads(["Service", "Availability", "vs " ~ d.previous_week, "SLO", "Error budget left (30 d)", "Incidents", "Downtime", "Longest"]) }}
{%- for g, services in grouped %}
{{ group_header(g, 8) }}
<tr style="color:{{ grey }}"><td nowrap>Total, {{ g.services|length }} service{{ "s" if g.services|length != 1 else "" }}</td>{{ num(fmt.availability(g.availability_pct)) }}<td></td><td nowrap>{{ g.slo_met }} met, {{ g.slo_missed }} missed</td><td></td>{{ num(g.incidents) }}{{ num(fmt.duration(g.downtime_s) if g.downtime_s else "—") }}<td></td></tr>
{%- for s in services %}
{{ row(loop) }}<td>{{ s.name }}</td>{{ num(fmt.availability(s.availability_pct), bold=true) }}{{ num(fmt.points(delta(s))) }}<td nowrap>{{ verdict(s.slo_met) }} <span style="{{ muted }}">{{ s.slo_target_pct }}%</span></td>{{ num(fmt.percent(s.error_budget_left_pct), red if s.error_budget_left_pct is not none and s.error_budget_left_pct < 0 else none) }}{{ num(s.incidents) }}{{ num(fmt.duration(s.downtime_s) if s.downtime_s else "—") }}{{ num(fmt.duration(s.longest_incident_s)) }}</tr>
{%- endfor %}
{%- endfor %}
</table>

<h2 style="{{ h2 }}">Charts</h2>
{%- for chart, src in charts %}
<p style="margin:12px 0 0"><img src="{{ src }}" width="{{ chart.width }}" height="{{ chart.height }}" alt="{{ chart.alt }}" style="display:block;width:100%;max-width:{{ chart.width }}px;height:auto;border:0"></p>
{%- endfor %}

<h2 style="{{ h2 }}">Incidents</h2>
{%- if d.incidents %}
{{ incident_table(d.incidents) }}
{%- else %}
<p style="font-size:14px">No public incidents this week.</p>
{%- endif %}

<h2 style="{{ h2 }}">Latency</h2>
{{ table_start() }}
{{ heads(["Service", "p50", "p95", "p99", "p95 vs " ~ d.previous_week, "p95 SLO"]) }}
{%- for g, services in grouped %}
{{ group_header(g, 6) }}
{%- for s in services %}
{%- set change = s.latency_change.p95_pct %}
{{ row(loop) }}<td>{{ s.name }}</td>{{ num(fmt.latency(s.latency.p50_ms)) }}{{ num(fmt.latency(s.latency.p95_ms), bold=true) }}{{ num(fmt.latency(s.latency.p99_ms)) }}{{ num(fmt.change(change), red if change is not none and change >= 10 else green if change is not none and change <= -10 else none) }}<td nowrap>{% if s.latency_slo_p95_ms is not none %}{{ verdict(s.latency_slo_met) }} <span style="{{ muted }}">{{ fmt.latency(s.latency_slo_p95_ms) }}</span>{% else %}<span style="{{ muted }}">none set</span>{% endif %}</td></tr>
{%- endfor %}
{%- endfor %}
</table>

<h2 style="{{ h2 }}">Quality, safety and cost</h2>
{{ table_start() }}
{{ heads(["Service", "Quality (mean)", "Degraded", "Drift events", "Safety blocks", "Probes", "Cost", "of budget"]) }}
{%- for g, services in grouped %}
{{ group_header(g, 8) }}
{%- for s in services %}
{{ row(loop) }}<td>{{ s.name }}</td>{{ num(fmt.score(s.quality_mean), red if s.quality_slo_met is false else none) }}{{ num(fmt.percent(s.degraded_share_pct, 1)) }}{{ num(s.drift_events) }}{{ num(s.safety_blocks) }}{{ num(fmt.count(s.probes)) }}{{ num(fmt.money(s.cost)) }}{{ num(fmt.percent(s.cost_budget_used_pct), red if s.cost_budget_used_pct is not none and s.cost_budget_used_pct > 100 else none) }}</tr>
{%- endfor %}
{%- endfor %}
</table>

{%- if d.comparisons %}
<h2 style="{{ h2 }}">Providers side by side</h2>
<p style="{{ muted }}margin:0 0 8px">Within each group, best availability first: the basis for choosing a primary and a failover. The best figure of each column is in bold.</p>
{%- for c in d.comparisons %}
{%- set best = best_of(c) %}
{{ table_start() }}
<tr><td colspan="5" style="{{ grp }}">{{ c.group or "Other services" }}</td></tr>
{{ heads(["Service", "Availability", "p95", "Quality", "Cost per good image"]) }}
{%- for r in c.rows %}
{{ row(loop) }}<td>{{ r.name }}</td>{{ num(fmt.availability(r.availability_pct), bold=best.availability is not none and r.availability_pct == best.availability) }}{{ num(fmt.latency(r.latency_p95_ms), bold=best.latency is not none and r.latency_p95_ms == best.latency) }}{{ num(fmt.score(r.quality_mean), bold=best.quality is not none and r.quality_mean == best.quality) }}{{ num(fmt.money(r.cost_per_success), bold=best.cost is not none and r.cost_per_success == best.cost) }}</tr>
{%- endfor %}
</table>
{%- endfor %}
{%- endif %}

<h2 style="{{ h2 }}">Notable</h2>
<ul style="margin:0;padding-left:20px;font-size:14px;line-height:1.5">
{%- if d.notable.worst_hour %}{% set w = d.notable.worst_hour %}
<li>Worst hour: {{ names.get(w.service, w.service) }}, {{ fmt.local_time(w.hour_start, d.timezone) }}: {{ w.down }} of {{ w.counted }} runs down ({{ fmt.availability(w.availability_pct) }} available).</li>
{%- endif %}
{%- if not d.notable.model_versions_known %}
<li>Model versions: unknown for this week (its raw results are no longer kept).</li>
{%- elif d.notable.model_versions %}
{%- for m in d.notable.model_versions %}
<li>{{ names.get(m.service, m.service) }} reported model version <code style="font-size:13px">{{ m.version }}</code>{% if m.previous %} (before: <code style="font-size:13px">{{ m.previous }}</code>){% endif %} from {{ fmt.local_time(m.first_seen, d.timezone) }}.</li>
{%- endfor %}
{%- else %}
<li>No new model versions reported.</li>
{%- endif %}
{%- if d.notable.budget_overruns_avoided %}
{%- for line in d.notable.budget_overruns_avoided %}<li>{{ line }}</li>{% endfor %}
{%- elif not d.notable.budget_overruns_recorded %}
<li>Budget overruns avoided: not recorded (the probe interval is stretched to the budget at start-up).</li>
{%- endif %}
{%- for note in d.notable.notes %}<li style="color:{{ grey }}">{{ note }}</li>{% endfor %}
</ul>

{%- if internal and d.operator_incidents %}
<h2 style="{{ h2 }}">Operator incidents</h2>
<p style="{{ muted }}margin:0 0 8px">Our side or our credentials: never on the status page and not counted in availability.</p>
{{ incident_table(d.operator_incidents) }}
{%- endif %}

<p style="margin:28px 0 12px;{{ muted }}">Generated {{ fmt.local_time(d.generated_at, d.timezone) }} by genstatus for {{ d.site_title }}. Availability = 1 − down runs ÷ counted runs (our own errors left out); the error budget is over the 30 days to the week's end. Times are {{ d.timezone }}.</p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""

INCIDENTS = """\
{%- set th = "border-bottom:2px solid #dadce0;font-size:12px;color:#5f6368;font-weight:600;vertical-align:bottom" -%}
<table role="presentation" width="100%" cellpadding="5" cellspacing="0" style="border-collapse:collapse;font-size:13px">
<tr><th align="left" style="{{ th }}">Incident</th><th align="left" style="{{ th }}">Started</th><th align="right" style="{{ th }}">Duration</th><th align="right" style="{{ th }}">To detect</th><th align="right" style="{{ th }}">To resolve</th><th align="left" style="{{ th }}">Regions</th></tr>
{%- for i in rows %}
<tr{% if loop.index is even %} bgcolor="#f8f9fa"{% endif %}><td valign="top"><div style="font-weight:600">{{ i.title }}</div><div style="color:#5f6368;font-size:12px">{{ i.service_name or i.service or "all services" }} · {{ i.kind }} · {{ i.impact }}{% if i.source == "manual" %} · by hand{% endif %}</div></td><td valign="top" nowrap>{{ fmt.local_time(i.started_at, tz) }}</td><td valign="top" align="right" nowrap>{{ fmt.duration(i.duration_s) if i.duration_s is not none else "open" }}</td><td valign="top" align="right" nowrap>{{ fmt.duration(i.time_to_detect_s) }}</td><td valign="top" align="right" nowrap>{{ fmt.duration(i.time_to_resolve_s) if i.time_to_resolve_s is not none else "open" }}</td><td valign="top">{{ i.regions|join(", ") or "—" }}</td></tr>
{%- endfor %}
</table>
"""


@cache
def _templates() -> tuple[Template, Template]:
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    return env.from_string(TEMPLATE), env.from_string(INCIDENTS)


def chart_cid(chart: Chart, week: str) -> str:
    """The Content-ID of a chart's inline part (without angle brackets): ``availability.2026-W47@genstatus``."""
    return f"{chart.name}.{week}@genstatus"


def chart_sources(charts: Sequence[Chart], images: ImageMode, *, week: str, prefix: str = "") -> list[str]:
    """Each chart's ``src`` for the chosen image mode (see the module docstring)."""
    if images == "cid":
        return [f"cid:{chart_cid(chart, week)}" for chart in charts]
    if images == "files":
        return [f"{prefix}{chart.filename}" for chart in charts]
    return ["data:image/png;base64," + base64.b64encode(chart.png).decode("ascii") for chart in charts]


def render_html(data: WeeklyReportData, charts: Sequence[Chart], *, images: ImageMode, internal: bool = True,
                prefix: str = "", link: bool = True, back: str | None = None) -> str:
    """The whole document.

    ``prefix`` goes before the chart files' names in ``"files"`` mode (``"report-"``); ``link`` adds the
    link to the report on the status site (when ``site.url`` is set); ``back`` a link to the list of reports.
    """
    page, incidents = _templates()
    names = {s.id: s.name for s in data.services}

    def incident_table(rows: list[IncidentRow]) -> Markup:
        return Markup(incidents.render(rows=rows, fmt=display, tz=data.timezone))

    return page.render(
        d=data, fmt=display, width=WIDTH, title=f"{data.site_title}: weekly report {data.week}",
        overview=display.overview(data), url=display.report_url(data) if link else None, back=back,
        internal=internal, names=names,
        grouped=_grouped(data), charts=list(zip(charts, chart_sources(charts, images, week=data.week, prefix=prefix),
                                                strict=True)),
        delta=_delta, best_of=_best, incident_table=incident_table,
    )


def _grouped(data: WeeklyReportData) -> list[tuple[GroupWeek, list[ServiceWeek]]]:
    """(group, its services) in the report's group order; services no group lists follow, under "Other services"."""
    by_id = {s.id: s for s in data.services}
    out: list[tuple[GroupWeek, list[ServiceWeek]]] = []
    seen: set[str] = set()
    for group in data.groups:
        members = [by_id[sid] for sid in group.services if sid in by_id]
        seen.update(s.id for s in members)
        out.append((group, members))
    rest = [s for s in data.services if s.id not in seen]
    if rest:
        out.append((GroupWeek(group="", services=[s.id for s in rest], probes=sum(s.probes for s in rest),
                              counted=sum(s.counted for s in rest), down=sum(s.down for s in rest),
                              availability_pct=None, slo_met=sum(1 for s in rest if s.slo_met is True),
                              slo_missed=sum(1 for s in rest if s.slo_met is False),
                              incidents=sum(s.incidents for s in rest), downtime_s=sum(s.downtime_s for s in rest),
                              cost=sum(s.cost for s in rest), cost_budget=None), rest))
    return out


def _delta(service: ServiceWeek) -> float | None:
    """The availability's change from the previous week, in percentage points."""
    if service.availability_pct is None or service.availability_previous_pct is None:
        return None
    return service.availability_pct - service.availability_previous_pct


@dataclass(frozen=True)
class _Best:
    """The best figure of each column of a comparison (None: no service has it)."""

    availability: float | None
    latency: float | None
    quality: float | None
    cost: float | None


def _best(comparison: GroupComparison) -> _Best:
    def pick(values: list[float | None], choose: Callable[[list[float]], float]) -> float | None:
        known = [v for v in values if v is not None]
        return choose(known) if known else None

    rows = comparison.rows
    return _Best(pick([r.availability_pct for r in rows], max), pick([r.latency_p95_ms for r in rows], min),
                 pick([r.quality_mean for r in rows], max), pick([r.cost_per_success for r in rows], min))
