"""Sending a week's report through the alert channels named in ``reports.weekly.channels``.

The alert channels' senders do the sending (SMTP with its TLS, login and deadline; Slack's webhook or
Web API; the signed webhook POST): each report sender below is the alert sender with one method
changed, so there is one SMTP and one HTTP client in the code base.

* email: the text part (Markdown) and the HTML part, the HTML with its charts as inline parts --
  ``multipart/alternative`` of ``text/plain`` and ``multipart/related`` (``text/html``, the PNGs,
  referenced by ``cid:``);
* Slack: the overview, the per-service summary table and a button to ``<site.url>/reports/<week>``;
* webhook: the report's JSON (``genstatus.weekly-report/v1``), signed and headed as alerts are
  (``X-Genstatus-Event: weekly_report``);
* console and Apprise: the Markdown as text.  PagerDuty pages people and takes no reports.

``send_week`` is the whole job: store the week (once), claim it, send, record.  Everything sent is
rendered from the stored JSON, so a resend after a crash sends what was archived.  The delivery key
(and so the email's Message-ID) is the same on every attempt: receivers that deduplicate show one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Literal

from sqlalchemy import Engine

from monitor.alerts.channels.base import DeliveryError, Receipt, Sender
from monitor.alerts.channels.console import ConsoleSender
from monitor.alerts.channels.email import EmailSender
from monitor.alerts.channels.http import encode_json, post_json
from monitor.alerts.channels.slack import FIELD_CHARS, HEADER_CHARS, SECTION_CHARS, URL_CHARS, SlackSender, cut
from monitor.alerts.channels.slack import escape as slack_escape
from monitor.alerts.channels.webhook import RESERVED_HEADERS, WebhookSender, sign
from monitor.alerts.message import Message
from monitor.alerts.render import redact, secrets_of
from monitor.config import Config
from monitor.reports import archive, display
from monitor.reports.charts import Chart, render_charts
from monitor.reports.model import WeeklyReportData
from monitor.reports.render_html import chart_cid, render_html
from monitor.reports.render_md import render_md
from monitor.reports.schema import to_json
from monitor.reports.weeks import Week

log = logging.getLogger("genstatus.reports")

EVENT = "weekly_report"
#: channel types that take a report; PagerDuty opens incidents for on-call people and is left out
REPORT_CHANNEL_TYPES = ("email", "slack", "webhook", "console", "apprise")
SLACK_NAME_CHARS = 22  # the summary table is monospaced: long names are cut to keep its columns


class ReportChannelError(ValueError):
    """A channel in ``reports.weekly.channels`` that is not defined, or cannot take a report."""


@dataclass(frozen=True)
class ReportMessage(Message):
    """A report as an alert ``Message`` (so the alert senders accept it), with what only reports carry."""

    report: WeeklyReportData | None = None
    html: str = ""  # the email's HTML part, charts as ``cid:``
    markdown: str = ""  # the email's text part and the console/Apprise body
    charts: tuple[tuple[str, Chart], ...] = ()  # (Content-ID, chart)
    document: dict = field(default_factory=dict)  # the JSON the webhook posts

    @property
    def headline(self) -> str:
        return self.title

    @property
    def mark(self) -> str:
        return "📊"

    def text(self) -> str:
        return self.markdown


def report_message(data: WeeklyReportData, channel_id: str, charts: list[Chart] | None = None) -> ReportMessage:
    """The message every channel lays out, rendered from the report (charts drawn once per send)."""
    charts = render_charts(data) if charts is None else charts
    return ReportMessage(
        delivery_key=f"weekly-report-{data.week}-{channel_id}", event=EVENT,
        title=f"{data.site_title}: weekly reliability report {data.week}",
        body="\n".join(display.overview(data)), impact="none", url=display.report_url(data), report=data,
        html=render_html(data, charts, images="cid", internal=True), markdown=render_md(data, internal=True),
        charts=tuple((chart_cid(chart, data.week), chart) for chart in charts), document=to_json(data),
    )


# -- the senders: the alert senders with their layout replaced ---------------------------------------------


class ReportEmailSender(EmailSender):
    """The alert email sender; a report's message becomes text + HTML with the charts as related parts."""

    def compose(self, message: Message) -> EmailMessage:
        mail = super().compose(message)  # the headers: From, To, Date, Message-ID, Auto-Submitted, Subject
        if not isinstance(message, ReportMessage):
            return mail
        mail.clear_content()
        mail.set_content(message.markdown)
        mail.add_alternative(message.html, subtype="html")
        *_, html_part = mail.iter_parts()
        for cid, chart in message.charts:  # the html part becomes multipart/related (html, charts)
            html_part.add_related(chart.png, "image", "png", cid=f"<{cid}>", disposition="inline",
                                  filename=chart.filename)
        return mail


class ReportSlackSender(SlackSender):
    """The alert Slack sender (webhook or Web API, its errors and deadline); a report gets its own blocks.

    A report is a message of its own, never threaded under an incident.
    """

    def send(self, message: Message) -> Receipt:
        if not isinstance(message, ReportMessage) or message.report is None:
            return super().send(message)
        deadline = time.monotonic() + self.timeout
        content = {"text": slack_fallback(message), "blocks": slack_blocks(message.report)}
        if self._config.webhook_url is not None:
            secret = self._config.webhook_url.get_secret_value()
            answer = self._post(secret, content, "slack webhook", deadline, secrets=[secret])
            return Receipt(status="200 ok" if answer.content.strip() == b"ok" else answer.status)
        data = self._call("chat.postMessage", {"channel": str(self._config.channel), **content, "unfurl_links": False},
                          deadline)
        return Receipt(status="200 ok", detail=f"ts {data.get('ts')}")


class ReportWebhookSender(WebhookSender):
    """The alert webhook's signed POST (same headers and signature), with the report's JSON as the body."""

    def send(self, message: Message) -> Receipt:
        if not isinstance(message, ReportMessage):
            return super().send(message)
        body = encode_json(message.document)
        timestamp = str(int(time.time()))
        headers = {k: v for k, v in self._config.headers.items() if not k.lower().startswith(RESERVED_HEADERS)}
        headers |= {"Content-Type": "application/json", "X-Genstatus-Delivery": message.delivery_key,
                    "X-Genstatus-Event": message.event, "X-Genstatus-Timestamp": timestamp}
        secrets = [*self._config.headers.values()]
        if self._config.secret is not None:
            key = self._config.secret.get_secret_value()
            headers["X-Genstatus-Signature"] = "sha256=" + sign(key, timestamp, body)
            secrets.append(key)
        answer = post_json(self._config.url.get_secret_value(), body, what="webhook", channel_id=self.channel_id,
                           timeout=self.timeout, headers=headers,
                           allow_private_network=self._config.allow_private_network, secrets=secrets)
        return Receipt(status=answer.status)


def _apprise(config: Any, site: Any) -> Sender:
    from monitor.alerts.channels.apprise import AppriseSender

    return AppriseSender(config, site)


SENDERS: dict[str, Callable[[Any, Any], Sender]] = {
    "email": ReportEmailSender, "slack": ReportSlackSender, "webhook": ReportWebhookSender,
    "console": ConsoleSender, "apprise": _apprise,
}


def report_channels(config: Config, only: list[str] | None = None) -> list[Any]:
    """The channel configs a report goes to (``only``: these ids instead of ``reports.weekly.channels``)."""
    wanted = only if only is not None else (config.reports.weekly.channels if config.reports.weekly else [])
    defined = {channel.id: channel for channel in config.alerts.channels}
    out = []
    for channel_id in wanted:
        channel = defined.get(channel_id)
        if channel is None:
            known = ", ".join(sorted(defined)) or "none: add some under alerts.channels"
            raise ReportChannelError(f"no alert channel {channel_id!r} (channels: {known})")
        if channel.type not in REPORT_CHANNEL_TYPES:
            raise ReportChannelError(f"channel {channel_id!r} is a {channel.type} channel, which takes no reports "
                                     f"(use {', '.join(REPORT_CHANNEL_TYPES)})")
        out.append(channel)
    return out


def build_report_senders(config: Config, only: list[str] | None = None) -> dict[str, Sender]:
    return {channel.id: SENDERS[channel.type](channel, config.site) for channel in report_channels(config, only)}


# -- Slack layout ------------------------------------------------------------------------------------------


def slack_fallback(message: ReportMessage) -> str:
    """The notification text (and what clients without blocks show)."""
    text = message.title
    return f"{text}: {message.url}" if message.url else text


def slack_blocks(data: WeeklyReportData) -> list[dict[str, Any]]:
    header = cut(f"📊 Weekly reliability report {data.week} · {display.week_range(data)}", HEADER_CHARS)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    overview = "\n".join(f"• {line}" for line in display.overview(data, name=slack_escape))
    if not data.complete:
        overview = "_This week is not over: partial figures._\n" + overview
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(overview, SECTION_CHARS)}})
    for chunk in _chunks(summary_lines(data), SECTION_CHARS - 8):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "```" + "\n".join(chunk) + "```"}})
    if data.incidents:
        lines = [f"• *{slack_escape(display.one_line(i.title))}* ({i.kind}, {i.impact}): "
                 f"{display.duration(i.duration_s) if i.duration_s is not None else 'still open'}, "
                 f"detected in {display.duration(i.time_to_detect_s)}" for i in data.incidents[:10]]
        if len(data.incidents) > 10:
            lines.append(f"… and {len(data.incidents) - 10} more in the full report")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut("\n".join(lines), SECTION_CHARS)}})
    url = display.report_url(data)
    if url and len(url) <= URL_CHARS:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": "open_report", "url": url,
            "text": {"type": "plain_text", "text": "Open the full report"}}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(
        f"{slack_escape(data.site_title)} · times in {data.timezone} · compared with {data.previous_week}", FIELD_CHARS)}]})
    return blocks[:50]  # Block Kit's limit per message


def summary_lines(data: WeeklyReportData) -> list[str]:
    """The summary table, monospaced: service, availability, SLO, incidents, downtime, p95 and its change."""
    rows = [("Service", "Avail.", "SLO", "Inc.", "Downtime", "p95", "Δp95")]
    for s in data.services:
        name = display.one_line(s.name)
        name = name if len(name) <= SLACK_NAME_CHARS else name[: SLACK_NAME_CHARS - 1] + "…"
        rows.append((name, display.availability(s.availability_pct), display.slo_word(s.slo_met), str(s.incidents),
                     display.duration(s.downtime_s) if s.downtime_s else display.NONE,
                     display.latency(s.latency.p95_ms), display.change(s.latency_change.p95_pct)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        # inside a code block Slack still reads &, < and > as markup: escaped, as the alert sender does
        lines.append(slack_escape("  ".join(cells).rstrip().replace("```", "'''")))
    return lines


def _chunks(lines: list[str], limit: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and size + len(line) + 1 > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(line[:limit])
        size += len(line) + 1
    return chunks


# -- the job ---------------------------------------------------------------------------------------------


@dataclass
class SendResult:
    """What ``send_week`` did: ``sent`` (every channel), ``partial`` (some failed; not retried, to send no
    duplicates), ``failed`` (none took it; the claim is released for a retry), ``already_sent``,
    ``claimed`` (another sender holds the claim until ``retry_at``), ``no_channels``."""

    week: str
    status: Literal["sent", "partial", "failed", "already_sent", "claimed", "no_channels"]
    receipts: dict[str, str] = field(default_factory=dict)  # channel id -> the receiver's answer
    errors: dict[str, str] = field(default_factory=dict)  # channel id -> why it failed
    retry_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("sent", "already_sent")


def sender_token() -> str:
    """Who holds a claim: host, process and a random part (one process may run several attempts)."""
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def send_week(
    engine: Engine,
    config: Config,
    week: Week | str,
    *,
    now: datetime | None = None,
    senders: Mapping[str, Sender] | None = None,
    lease: timedelta = archive.LEASE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SendResult:
    """Store ``week`` (once), claim it and send it through the report channels; record the outcome.

    ``senders`` replaces ``build_report_senders(config)`` (tests, ``--channel``).  Raises
    ``archive.WeekNotOver`` for a week that has not ended and ``ReportChannelError`` for a bad channel.
    """
    now = now or clock()
    senders = build_report_senders(config) if senders is None else senders
    stored = archive.generate(engine, config, week, now)
    if stored.sent_at is not None:
        return SendResult(stored.week, "already_sent", sent_at=stored.sent_at)
    if not senders:
        return SendResult(stored.week, "no_channels")
    owner = sender_token()
    if not archive.claim(engine, stored.week, owner, now, lease):
        again = archive.load(engine, stored.week)
        if again is not None and again.sent_at is not None:
            return SendResult(stored.week, "already_sent", sent_at=again.sent_at)
        return SendResult(stored.week, "claimed", retry_at=archive.claim_expires(again, lease) if again else None)
    result = SendResult(stored.week, "failed")
    secrets = secrets_of(config)
    try:
        data = stored.report()
        charts = render_charts(data)
        for channel_id, sender in senders.items():
            message = report_message(data, channel_id, charts)
            try:
                receipt = sender.send(message)
            except DeliveryError as error:
                kind = "permanent" if error.permanent else "temporary"
                result.errors[channel_id] = redact(f"{kind}: {error.reason}", secrets) or kind
                log.warning("weekly report %s: channel %s failed: %s", stored.week, channel_id, result.errors[channel_id])
            else:
                result.receipts[channel_id] = receipt.status + (f" — {receipt.detail}" if receipt.detail else "")
                log.info("weekly report %s sent through %s (%s)", stored.week, channel_id, receipt.status)
    except Exception as error:  # a rendering or programming error: release the claim, record why, re-raise
        archive.finish(engine, stored.week, owner, sent_at=None, error=redact(f"{type(error).__name__}: {error}", secrets))
        raise
    error_text = "; ".join(f"{channel}: {reason}" for channel, reason in result.errors.items()) or None
    if result.receipts:
        result.sent_at = clock()
        result.status = "partial" if result.errors else "sent"
        archive.finish(engine, stored.week, owner, sent_at=result.sent_at, error=error_text)
    else:
        archive.finish(engine, stored.week, owner, sent_at=None, error=error_text)
    return result

