"""Sending the weekly report: email to a real SMTP server (and shown in headless Chromium), Slack, webhook,
the once-only claim (racing senders, a sender that dies after claiming) and the scheduled job."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk.models.blocks import ActionsBlock, Block, HeaderBlock, SectionBlock
from sqlalchemy.orm import Session

from monitor.alerts.channels.base import PermanentError, Receipt, TemporaryError
from monitor.alerts.message import Message
from monitor.config import Config, parse_config
from monitor.reports import archive, schedule
from monitor.reports.archive import LEASE
from monitor.reports.delivery import (
    EVENT,
    ReportChannelError,
    SendResult,
    build_report_senders,
    report_message,
    send_week,
)
from monitor.reports.render_md import render_md
from monitor.reports.schema import to_json
from monitor.store.db import make_engine
from monitor.store.models import Base, WeeklyReport
from tests.alerts.receiver import Receiver, Reply, Request, receiver  # noqa: F401
from tests.alerts.test_email import Server, server  # noqa: F401
from tests.reports_data import END, HOSTILE_NAME, WEEK, sample

NOW = END + timedelta(hours=9)  # Monday 09:00 after the week
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def make_config(tmp_path: Path, *, channels: list[dict[str, Any]] = (), weekly: dict[str, Any] | None = None,
                timezone: str = "UTC") -> Config:
    import yaml

    document = {
        "site": {"title": "Image Generation Status", "url": "https://status.example.com", "timezone": timezone},
        "database": f"sqlite:///{tmp_path / 'reports.db'}",
        "canaries": [{"id": "c", "prompt": "an apple"}],
        "services": [{"id": sid, "name": sid, "provider": "openai", "canaries": ["c"], "interval": "5m"}
                     for sid in ("dalle3", "flux", "flux-dev")],
        "alerts": {"channels": list(channels)},
        "reports": {"weekly": weekly if weekly is not None else {"channels": [c["id"] for c in channels]}},
    }
    return parse_config(yaml.safe_dump(document, allow_unicode=True), env={})


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reports.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def store(engine, data=None, **fields: Any) -> None:
    """Archive the hand-built week, as ``archive.generate`` would have."""
    data = data or sample()
    html, markdown = archive.render_for_archive(data)
    with Session(engine) as session, session.begin():
        session.add(WeeklyReport(week=data.week, generated_at=NOW, data=to_json(data), html=html, markdown=markdown,
                                 **fields))


class Counting:
    """A sender that counts what it is given (and can be slow, or fail)."""

    timeout = 5.0

    def __init__(self, channel_id: str = "rec", *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.channel_id = channel_id
        self.delay = delay
        self.error = error
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        with self._lock:
            self.sent.append(message)
        return Receipt("250")


# -- email -----------------------------------------------------------------------------------------------


def email_channel(port: int) -> dict[str, Any]:
    return {"id": "mail", "type": "email", "to": ["managers@example.com"], "from": "Status <status@example.com>",
            "smtp": {"host": "127.0.0.1", "port": port, "starttls": False}}


def test_the_email_has_text_html_and_inline_charts_and_renders(tmp_path, engine, server: Server) -> None:  # noqa: F811
    config = make_config(tmp_path, channels=[email_channel(server.port)])
    store(engine)
    result = send_week(engine, config, WEEK, now=NOW)
    assert result.status == "sent" and list(result.receipts) == ["mail"]

    [mail] = server.handler.messages
    assert mail["Subject"] == f"Image Generation Status: weekly reliability report {WEEK}"
    assert mail["Message-ID"] == f"<weekly-report-{WEEK}-mail.genstatus@example.com>"  # the same on a resend
    assert mail.get_content_type() == "multipart/alternative"
    plain, related = mail.iter_parts()
    assert (plain.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    assert plain.get_content().replace("\r\n", "\n") == render_md(sample(), internal=True)
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert [image.get_content_type() for image in images] == ["image/png"] * 3
    assert all(image.get_content_disposition() == "inline" for image in images)
    html = html_part.get_content()
    cids = {image["Content-ID"].strip("<>"): image.get_content() for image in images}
    assert re.findall(r'src="cid:([^"]+)"', html) == list(cids)  # each chart referenced once, in order
    assert "dalle3: our API key was rejected" in html  # the email is internal: operator incidents included

    # the HTML as a mail client shows it: cid: references resolved to the attached parts
    for number, (cid, png) in enumerate(cids.items()):
        (tmp_path / f"part{number}.png").write_bytes(png)
        html = html.replace(f"cid:{cid}", f"part{number}.png")
    page = tmp_path / "email.html"
    page.write_text(html, encoding="utf-8")
    widths = screenshot(page, tmp_path / "email.png")
    assert len(widths) == 3 and all(width > 0 for width in widths), widths


def screenshot(page: Path, shot: Path) -> list[int]:
    """Open ``page`` in headless Chromium, save a full-page screenshot, return each image's natural width."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 800, "height": 900})
            tab.goto(page.as_uri(), wait_until="load")
            widths = tab.evaluate("Array.from(document.images, img => img.complete ? img.naturalWidth : 0)")
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    return list(widths)


def test_an_smtp_refusal_releases_the_claim_and_is_recorded(tmp_path, engine, server: Server) -> None:  # noqa: F811
    server.handler.data_reply = "451 4.3.0 try again later"
    config = make_config(tmp_path, channels=[email_channel(server.port)])
    store(engine)
    result = send_week(engine, config, WEEK, now=NOW)
    assert result.status == "failed" and "451" in result.errors["mail"] and result.errors["mail"].startswith("temporary")
    stored = archive.load(engine, WEEK)
    assert stored is not None and stored.sent_at is None and stored.claimed_at is None and "451" in stored.send_error

    server.handler.data_reply = None  # the server recovers: the next attempt claims at once and sends
    assert send_week(engine, config, WEEK, now=NOW + timedelta(minutes=15)).status == "sent"
    assert len(server.handler.messages) == 1


# -- Slack and webhook -----------------------------------------------------------------------------------


def test_slack_gets_the_summary_table_and_a_link(tmp_path, engine, receiver: Receiver) -> None:  # noqa: F811
    slack = {"id": "team", "type": "slack", "webhook_url": f"{receiver.url}/services/T0/B0/secret-part-123",
             "allow_private_network": True}
    config = make_config(tmp_path, channels=[slack])
    store(engine, sample(hostile=True))
    assert send_week(engine, config, WEEK, now=NOW).status == "sent"

    [request] = receiver.requests
    body = request.json()
    assert body["text"] == f"Image Generation Status: weekly reliability report {WEEK}: https://status.example.com/reports/{WEEK}"
    models = [Block.parse(block) for block in body["blocks"]]
    assert [m.to_dict() for m in models if m is not None] == body["blocks"]  # valid Block Kit, nothing lost
    assert isinstance(models[0], HeaderBlock) and WEEK in body["blocks"][0]["text"]["text"]
    [button] = [m for m in models if isinstance(m, ActionsBlock)][0].elements
    assert button.url == f"https://status.example.com/reports/{WEEK}"
    sections = [b["text"]["text"] for b, m in zip(body["blocks"], models, strict=True) if isinstance(m, SectionBlock)]
    table = next(text for text in sections if text.startswith("```"))
    lines = table.strip("`").splitlines()
    assert lines[0].split() == ["Service", "Avail.", "SLO", "Inc.", "Downtime", "p95", "Δp95"]
    rows = {line.split("  ")[0].strip(): line for line in lines[1:]}
    assert re.search(r"99\.95%\s+met\s+0\s+—\s+14\.0 s\s+\+11%$", rows["DALL·E 3"])
    hostile = next(line for line in lines if "98.76%" in line)
    assert "<" not in hostile and "&lt;script&gt;" in hostile  # no Slack markup (<!here>, links) gets through
    assert "<!here>" not in request.body.decode() and "&lt;!here&gt;" in request.body.decode()
    assert HOSTILE_NAME[:10] not in request.body.decode()


def test_a_big_fleet_fits_slacks_limits() -> None:
    from monitor.reports.delivery import slack_blocks

    blocks = slack_blocks(sample(services=50))
    assert len(blocks) <= 50
    tables = [b["text"]["text"] for b in blocks if b["type"] == "section" and b["text"]["text"].startswith("```")]
    assert len(tables) >= 2 and all(len(text) <= 3000 for text in tables)  # split, never cut
    rows = [line for text in tables for line in text.strip("`").splitlines()]
    assert len(rows) == 51 and rows[-1].startswith("Service 49")


def test_the_webhook_gets_the_signed_json(tmp_path, engine, receiver: Receiver) -> None:  # noqa: F811
    hook = {"id": "bi", "type": "webhook", "url": f"{receiver.url}/reports", "secret": "s3cret-signing-key",
            "allow_private_network": True}
    config = make_config(tmp_path, channels=[hook])
    data = sample()
    store(engine, data)
    assert send_week(engine, config, WEEK, now=NOW).status == "sent"
    [request] = receiver.requests
    assert request.json() == to_json(data)
    assert request.json()["schema"] == "genstatus.weekly-report/v1"
    assert request.headers["x-genstatus-event"] == EVENT
    assert request.headers["x-genstatus-delivery"] == f"weekly-report-{WEEK}-bi"
    signed = request.headers["x-genstatus-timestamp"].encode() + b"." + request.body
    expected = hmac.new(b"s3cret-signing-key", signed, hashlib.sha256).hexdigest()
    assert request.headers["x-genstatus-signature"] == f"sha256={expected}"


def test_channels_that_cannot_take_a_report(tmp_path) -> None:
    pager = {"id": "oncall", "type": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcdef"}
    with pytest.raises(ReportChannelError, match="pagerduty"):
        build_report_senders(make_config(tmp_path, channels=[pager]))
    config = make_config(tmp_path, channels=[{"id": "log", "type": "console"}])
    with pytest.raises(ReportChannelError, match="no alert channel 'nope'"):
        build_report_senders(config, ["nope"])
    assert list(build_report_senders(config)) == ["log"]


def test_the_console_gets_the_markdown(caplog) -> None:
    from monitor.alerts.channels.console import ConsoleSender
    from monitor.config import SiteConfig
    from monitor.config.alerts import ConsoleChannel

    ConsoleSender(ConsoleChannel(id="log", type="console"), SiteConfig()).send(report_message(sample(), "log"))
    assert "| FLUX.1 pro | **98.76%** |" in caplog.text and "weekly reliability report 2026-W47" in caplog.text


# -- once only -------------------------------------------------------------------------------------------


def test_two_racing_senders_send_once(tmp_path, engine) -> None:
    """Both generate the week (the figures from the empty database) and race for the claim."""
    config = make_config(tmp_path)
    counting = Counting(delay=0.3)
    start = threading.Barrier(2)
    results: list[SendResult] = []

    def run() -> None:
        start.wait()
        results.append(send_week(engine, config, WEEK, now=NOW, senders={"rec": counting}))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(counting.sent) == 1
    assert sorted(r.status for r in results) in (["claimed", "sent"], ["already_sent", "sent"])
    stored = archive.load(engine, WEEK)
    assert stored is not None and stored.sent_at is not None and stored.send_error is None
    assert archive.weeks(engine) == [WEEK]  # one stored report
    assert send_week(engine, config, WEEK, now=NOW + timedelta(days=1), senders={"rec": counting}).status == "already_sent"
    assert len(counting.sent) == 1


def test_a_sender_that_died_after_claiming_is_replaced_after_the_lease(tmp_path, engine) -> None:
    config = make_config(tmp_path)
    store(engine)
    assert archive.claim(engine, WEEK, "crashed-process", NOW)  # claimed, then the process died: nothing recorded
    counting = Counting()

    early = send_week(engine, config, WEEK, now=NOW + LEASE - timedelta(seconds=1), senders={"rec": counting})
    assert early.status == "claimed" and early.retry_at == NOW + LEASE and counting.sent == []

    late = send_week(engine, config, WEEK, now=NOW + LEASE + timedelta(seconds=1), senders={"rec": counting})
    assert late.status == "sent" and len(counting.sent) == 1
    assert not archive.finish(engine, WEEK, "crashed-process", sent_at=NOW, error="late")  # the old claim is void
    stored = archive.load(engine, WEEK)
    assert stored is not None and stored.send_error is None and stored.claimed_by != "crashed-process"


def test_a_partial_send_is_not_repeated(tmp_path, engine) -> None:
    config = make_config(tmp_path)
    store(engine)
    good, bad = Counting("good"), Counting("bad", error=PermanentError("webhook gone (HTTP 410)"))
    result = send_week(engine, config, WEEK, now=NOW, senders={"good": good, "bad": bad})
    assert result.status == "partial" and result.errors == {"bad": "permanent: webhook gone (HTTP 410)"}
    stored = archive.load(engine, WEEK)
    assert stored is not None and stored.sent_at is not None and stored.send_error == "bad: permanent: webhook gone (HTTP 410)"
    assert send_week(engine, config, WEEK, now=NOW, senders={"good": good, "bad": bad}).status == "already_sent"
    assert len(good.sent) == 1


def test_a_week_not_over_is_neither_stored_nor_sent(tmp_path, engine) -> None:
    with pytest.raises(archive.WeekNotOver):
        send_week(engine, make_config(tmp_path), WEEK, now=END - timedelta(seconds=1), senders={"rec": Counting()})
    assert archive.weeks(engine) == []


def test_errors_never_show_a_configured_secret(tmp_path, engine) -> None:
    secret = "hunter2-smtp-password"
    channel = email_channel(1) | {"smtp": {"host": "127.0.0.1", "port": 1, "starttls": False, "username": "u",
                                          "password": secret}}
    config = make_config(tmp_path, channels=[channel])
    store(engine)
    failing = Counting("mail", error=TemporaryError(f"the server said: bad password {secret}"))
    result = send_week(engine, config, WEEK, now=NOW, senders={"mail": failing})
    stored = archive.load(engine, WEEK)
    assert stored is not None and secret not in (stored.send_error or "") and "[redacted]" in (stored.send_error or "")
    assert secret not in result.errors["mail"]


# -- the schedule ----------------------------------------------------------------------------------------


def test_the_job_is_a_cron_trigger_at_the_configured_time_in_the_site_timezone(tmp_path, engine) -> None:
    config = make_config(tmp_path, weekly={"at": "tue 07:30"}, timezone="Europe/Berlin")
    scheduler = BackgroundScheduler(timezone=UTC)
    job_runner = schedule.WeeklyReportSchedule(engine, config, clock=lambda: NOW + timedelta(days=2))
    job_runner.register(scheduler)
    job = scheduler.get_job(schedule.JOB_ID)
    fields = {field.name: str(field) for field in job.trigger.fields}
    assert (fields["day_of_week"], fields["hour"], fields["minute"], fields["second"]) == ("tue", "7", "30", "0")
    assert job.trigger.timezone == ZoneInfo("Europe/Berlin")
    after = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday
    assert job.trigger.get_next_fire_time(None, after) == datetime(2026, 11, 24, 7, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    summer = datetime(2026, 7, 1, tzinfo=UTC)  # CEST: 07:30 local is 05:30 UTC
    assert job.trigger.get_next_fire_time(None, summer).astimezone(UTC) == datetime(2026, 7, 7, 5, 30, tzinfo=UTC)
    assert scheduler.get_job(schedule.RETRY_JOB_ID) is None  # Thursday: long after Tuesday's firing, no catch-up

    default = schedule.cron_trigger(make_config(tmp_path, weekly={}))
    assert {f.name: str(f) for f in default.fields}["day_of_week"] == "mon"
    assert {f.name: str(f) for f in default.fields}["hour"] == "9" and default.timezone == ZoneInfo("UTC")


def test_a_missed_firing_is_caught_up_once(tmp_path, engine) -> None:
    config = make_config(tmp_path, weekly={"at": "mon 09:00"})
    scheduler = BackgroundScheduler(timezone=UTC)
    restarted = NOW + timedelta(hours=2)  # down at 09:00, back at 11:00
    schedule.WeeklyReportSchedule(engine, config, clock=lambda: restarted).register(scheduler)
    retry = scheduler.get_job(schedule.RETRY_JOB_ID)
    assert retry is not None and retry.trigger.run_date == restarted

    store(engine, sent_at=NOW)  # had it gone out before the restart, nothing is caught up
    scheduler = BackgroundScheduler(timezone=UTC)
    schedule.WeeklyReportSchedule(engine, config, clock=lambda: restarted).register(scheduler)
    assert scheduler.get_job(schedule.RETRY_JOB_ID) is None


def test_a_firing_late_on_sunday_is_caught_up_after_midnight(tmp_path, engine) -> None:
    config = make_config(tmp_path, weekly={"at": "sun 20:00"}, timezone="Europe/Berlin")
    sunday = datetime(2026, 11, 29, 20, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    monday = sunday + timedelta(hours=5)  # 01:00 the next (ISO) week: the firing 5 hours ago was missed
    assert schedule.latest_firing(monday, config) == sunday
    assert str(schedule.week_due(monday, config)) == WEEK  # what the Sunday firing sends: the week before it
    assert str(schedule.week_due(sunday - timedelta(seconds=5), config)) == WEEK  # a job a moment early, too
    scheduler = BackgroundScheduler(timezone=UTC)
    schedule.WeeklyReportSchedule(engine, config, clock=lambda: monday).register(scheduler)
    assert scheduler.get_job(schedule.RETRY_JOB_ID) is not None


def test_the_job_sends_the_last_completed_week_and_retries_on_failure(tmp_path, engine) -> None:
    config = make_config(tmp_path, weekly={"at": "mon 09:00"})
    calls: list[tuple[str, datetime]] = []
    answers = [SendResult(WEEK, "failed", errors={"mail": "temporary: 451"}),
               SendResult(WEEK, "claimed", retry_at=NOW + timedelta(minutes=40)),
               SendResult(WEEK, "sent", receipts={"mail": "250"})]

    def fake_send(engine_: Any, config_: Any, week: Any, *, now: datetime, clock: Any) -> SendResult:
        calls.append((str(week), now))
        return answers[len(calls) - 1]

    clock = [NOW]
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)  # jobs are stored (a retry replaces the one before) but never run here
    try:
        runner = schedule.WeeklyReportSchedule(engine, config, clock=lambda: clock[0], send=fake_send)
        runner.scheduler = scheduler  # registered without the catch-up check
        runner.run()
        assert calls == [(WEEK, NOW)]
        assert scheduler.get_job(schedule.RETRY_JOB_ID).trigger.run_date == NOW + schedule.RETRY_DELAY
        clock[0] = NOW + schedule.RETRY_DELAY
        runner.run()  # another process holds the claim: try when its lease ends
        assert scheduler.get_job(schedule.RETRY_JOB_ID).trigger.run_date == NOW + timedelta(minutes=40, seconds=1)
        scheduler.remove_job(schedule.RETRY_JOB_ID)
        clock[0] = NOW + timedelta(minutes=41)
        assert runner.run().status == "sent"
        assert scheduler.get_job(schedule.RETRY_JOB_ID) is None
    finally:
        scheduler.shutdown(wait=False)


def test_the_runtime_starts_the_report_schedule(tmp_path) -> None:
    from monitor.engine.runtime import MonitorRuntime

    config = make_config(tmp_path, weekly={"at": "wed 06:15"}, timezone="America/New_York")
    runtime = MonitorRuntime(config)
    try:
        assert runtime.reports is not None
        runtime.reports.start()
        job = runtime.reports.scheduler.get_job(schedule.JOB_ID)
        assert {f.name: str(f) for f in job.trigger.fields}["day_of_week"] == "wed"
        assert job.trigger.timezone == ZoneInfo("America/New_York")
    finally:
        if runtime.reports is not None:
            runtime.reports.stop()
        runtime.runner.close()
        runtime.engine.dispose()
        runtime.lock.release()
