"""The dispatcher: routing outbox rows to deliveries, sending each once, retries, permanent failures,
expiry, threading, redaction, two dispatchers at once, and a dispatcher killed mid-send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.alerts.channels.base import PermanentError, Receipt, TemporaryError
from monitor.alerts.dispatcher import HOLD_AFTER_CLAIM_ENV, Dispatcher, State
from monitor.alerts.message import Message
from monitor.alerts.routing import Event, channels_for
from monitor.config import Config, parse_config
from monitor.enums import Audience, Impact
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import AlertDelivery, AlertOutbox, Incident
from monitor.store.results import ResultStore

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
SECRET = "sk-live-DONOTLEAK-1234567890"

CONFIG = f"""\
site: {{url: "https://status.example.com"}}
canaries: [{{id: c, prompt: x}}]
services:
  - {{id: dalle3, name: "DALL·E 3", group: OpenAI, provider: openai, canaries: [c], api_key: "{SECRET}"}}
  - {{id: sd3, group: Stability, provider: openai, canaries: [c]}}
alerts:
  channels:
    - {{id: pager, type: console}}
    - {{id: chat, type: console}}
    - {{id: ops, type: console}}
  routes:
    - {{channels: [pager], min_impact: major}}
    - {{channels: [chat], groups: [OpenAI], resolved: false}}
    - {{channels: [ops]}}
"""


class Recording:
    """A channel that records what it was asked to send and answers from a script (a test double of a receiver)."""

    timeout = 5.0

    def __init__(self, channel_id: str, script: list | None = None) -> None:
        self.channel_id = channel_id
        self.script = list(script or [])
        self.sent: list[Message] = []
        self.lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        with self.lock:
            self.sent.append(message)
            answer = self.script.pop(0) if self.script else Receipt("200", thread={"ts": f"ts-{message.delivery_key}"})
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def engine(tmp_path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    upgrade(engine)
    return engine


def config() -> Config:
    return parse_config(CONFIG, env={})


def incident_row(engine: Engine, service: str = "dalle3", impact: str = "major", kind: str = "outage") -> int:
    with Session(engine) as session, session.begin():
        ResultStore(engine).sync_catalog(config())
        row = Incident(service_id=service, kind=kind, audience="public", impact=impact, status="investigating",
                       title=f"{service}: major outage", regions=["eu"], started_at=NOW - timedelta(minutes=3),
                       detected_at=NOW)
        session.add(row)
        session.flush()
        return row.id


def outbox(engine: Engine, event: str = "open", incident_id: int | None = None, service: str | None = "dalle3",
           impact: str = "major", audience: str = "public", body: str = "Confirmed outage problem in eu: server_error (3).") -> int:
    with Session(engine) as session, session.begin():
        row = AlertOutbox(created_at=NOW, incident_id=incident_id, service_id=service, event=event, audience=audience,
                          impact=impact, title=f"{service}: major outage", body=body, attempts=0)
        session.add(row)
        session.flush()
        return row.id


def deliveries(engine: Engine) -> list[AlertDelivery]:
    with Session(engine) as session:
        return list(session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)))


def dispatcher(engine: Engine, **senders: Recording) -> Dispatcher:
    everyone = {cid: senders.get(cid) or Recording(cid) for cid in ("pager", "chat", "ops")}
    return Dispatcher(engine, config(), senders=everyone, clock=lambda: NOW)  # type: ignore[arg-type]


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize("event, expected", [
    (Event("open", Audience.PUBLIC, Impact.MAJOR, "dalle3", "outage"), ["pager", "chat", "ops"]),
    (Event("open", Audience.PUBLIC, Impact.MINOR, "dalle3", "outage"), ["chat", "ops"]),  # below the pager's min_impact
    (Event("open", Audience.PUBLIC, Impact.MAJOR, "sd3", "outage"), ["pager", "ops"]),  # not in the chat's group
    (Event("resolve", Audience.PUBLIC, Impact.MAJOR, "dalle3", "outage"), ["pager", "ops"]),  # chat: resolved: false
    (Event("open", Audience.OPERATOR, Impact.MINOR, "dalle3", "operator"), ["ops"]),  # only the unfiltered route
])
def test_routes(event, expected):
    assert channels_for(event, config(), NOW) == expected


def test_maintenance_silences_the_services_it_covers():
    cfg = parse_config(CONFIG + "maintenance:\n  - {title: GPU upgrade, services: [dalle3], "
                       "start: 2026-12-02T02:00:00Z, end: 2026-12-02T04:00:00Z}\n", env={})
    assert channels_for(Event("open", Audience.PUBLIC, Impact.MAJOR, "dalle3", "outage"), cfg, NOW) == []
    assert channels_for(Event("open", Audience.PUBLIC, Impact.MAJOR, "sd3", "outage"), cfg, NOW) == ["pager", "ops"]


def test_maintenance_scheduled_on_the_admin_side_silences_too(engine):
    from monitor.store.models import Maintenance

    with Session(engine) as session, session.begin():
        session.add(Maintenance(title="GPU upgrade", body="", services=["dalle3"], starts_at=NOW - timedelta(minutes=5),
                                ends_at=NOW + timedelta(hours=1), status="in_progress"))
    outbox(engine, "open", incident_row(engine))
    pager, chat, ops = Recording("pager"), Recording("chat"), Recording("ops")
    result = dispatcher(engine, pager=pager, chat=chat, ops=ops).run_once()
    assert (result.routed, result.sent) == (1, 0)
    assert [len(r.sent) for r in (pager, chat, ops)] == [0, 0, 0]


# -- delivery --------------------------------------------------------------------------


def test_each_event_reaches_each_routed_channel_once(engine):
    incident = incident_row(engine)
    outbox(engine, "open", incident)
    pager, chat, ops = Recording("pager"), Recording("chat"), Recording("ops")
    first = dispatcher(engine, pager=pager, chat=chat, ops=ops)
    result = first.run_once()
    assert (result.routed, result.sent) == (1, 3)
    assert first.run_once().sent == 0  # nothing twice
    assert [len(r.sent) for r in (pager, chat, ops)] == [1, 1, 1]
    message = pager.sent[0]
    assert message.delivery_key == "gs-1-pager" and message.url == f"https://status.example.com/#incident-{incident}"
    assert message.service_name == "DALL·E 3" and message.group == "OpenAI" and message.regions == ("eu",)
    assert message.headline.startswith("dalle3: major outage") and message.since and "UTC" in message.since
    assert {d.state for d in deliveries(engine)} == {State.SENT}
    assert all(d.receiver_status == "200" and d.duration_ms is not None and d.attempts == 1 for d in deliveries(engine))


def test_updates_thread_under_the_first_message_of_the_incident(engine):
    incident = incident_row(engine)
    pager = Recording("pager")
    outbox(engine, "open", incident)
    dispatcher(engine, pager=pager).run_once()
    outbox(engine, "resolve", incident)
    dispatcher(engine, pager=pager).run_once()
    opened, resolved = pager.sent
    assert opened.thread == {} and resolved.thread == {"ts": f"ts-{opened.delivery_key}"}
    assert resolved.event == "resolve" and resolved.resolved


def test_no_configured_secret_reaches_a_message(engine):
    incident = incident_row(engine)
    outbox(engine, "open", incident, body=f"Confirmed outage: server_error (3); e.g. HTTP 401: bad key {SECRET}.")
    ops = Recording("ops")
    dispatcher(engine, ops=ops).run_once()
    (message,) = ops.sent
    assert SECRET not in message.text() and "[redacted]" in message.body and SECRET not in (message.example or "")


def test_temporary_errors_are_retried_with_backoff_and_retry_after(engine):
    incident = incident_row(engine)
    outbox(engine, "open", incident, service="sd3")  # pager and ops only
    pager = Recording("pager", [TemporaryError("HTTP 503", status="HTTP 503"),
                                TemporaryError("HTTP 429", status="HTTP 429", retry_after=42)])
    clock = [NOW]
    sender = Dispatcher(engine, config(), senders={"pager": pager, "chat": Recording("chat"), "ops": Recording("ops")},  # type: ignore[dict-item]
                        clock=lambda: clock[0])
    assert sender.run_once(clock[0]).retried == 1
    (pending,) = [d for d in deliveries(engine) if d.channel_id == "pager"]
    assert pending.state == State.PENDING and pending.last_error == "HTTP 503" and pending.receiver_status == "HTTP 503"
    assert timedelta(seconds=7) <= pending.next_attempt_at - NOW <= timedelta(seconds=13)  # 10 s x jitter
    assert sender.run_once(clock[0]).sent == 0  # not due yet
    clock[0] = pending.next_attempt_at
    assert sender.run_once(clock[0]).retried == 1
    (pending,) = [d for d in deliveries(engine) if d.channel_id == "pager"]
    assert pending.next_attempt_at - clock[0] == timedelta(seconds=42)  # the receiver's Retry-After
    clock[0] = pending.next_attempt_at
    assert sender.run_once(clock[0]).sent == 1
    (done,) = [d for d in deliveries(engine) if d.channel_id == "pager"]
    assert done.state == State.SENT and done.attempts == 3 and done.last_error is None
    assert len({m.delivery_key for m in pager.sent}) == 1  # every attempt carried the same idempotency key


def test_a_permanent_error_stops_the_channel_and_tells_the_operator_elsewhere(engine, caplog):
    incident = incident_row(engine)
    outbox(engine, "open", incident)
    pager = Recording("pager", [PermanentError("webhook gone (HTTP 410)", status="HTTP 410")])
    ops = Recording("ops")
    d = dispatcher(engine, pager=pager, ops=ops)
    assert d.run_once().failed == 1
    (failed,) = [x for x in deliveries(engine) if x.channel_id == "pager"]
    assert failed.state == State.FAILED and "410" in (failed.last_error or "")
    assert "pager" in d.failing and "alert channel pager is failing" in caplog.text
    d.run_once()  # the operator notice is routed to ops (the unfiltered route), never to the failing pager
    notices = [m for m in ops.sent if m.event == "channel_failing"]
    assert len(notices) == 1 and notices[0].audience == "operator" and "alert-test pager" in notices[0].body
    assert [m.event for m in pager.sent] == ["open"]


def test_undeliverable_alerts_expire_loudly(engine, caplog):
    outbox(engine, "open", incident_row(engine))
    clock = [NOW]
    always_down = [TemporaryError("connection refused")] * 50
    d = Dispatcher(engine, config(), senders={"pager": Recording("pager", always_down), "chat": Recording("chat"),  # type: ignore[dict-item]
                                              "ops": Recording("ops")}, clock=lambda: clock[0])
    d.run_once(clock[0])
    clock[0] = NOW + timedelta(hours=25)
    assert d.run_once(clock[0]).expired == 1 and d.expired_total == 1
    assert "expired undelivered" in caplog.text
    assert [x.state for x in deliveries(engine) if x.channel_id == "pager"] == [State.EXPIRED]


def test_a_delivery_left_mid_send_goes_out_again_with_the_same_key(engine):
    outbox(engine, "open", incident_row(engine), service="sd3")
    pager = Recording("pager")
    d = dispatcher(engine, pager=pager)
    d.route_new(NOW)
    with Session(engine) as session, session.begin():  # a dispatcher claimed it and died
        for row in session.scalars(select(AlertDelivery)):
            row.state, row.claimed_by, row.claimed_at = State.SENDING, "dead-host-1", NOW - timedelta(minutes=1)
    assert d.run_once(NOW).sent == 0  # within the lease: maybe still sending
    later = NOW + d.lease + timedelta(seconds=1)
    result = d.run_once(later)
    assert result.reclaimed == 2 and result.sent == 2
    assert [m.delivery_key for m in pager.sent] == ["gs-1-pager"]


def _race(engine: Engine) -> tuple[list[Recording], list[Dispatcher]]:
    for _ in range(20):
        outbox(engine, "open", None, service="dalle3")
    channels = [Recording(cid) for cid in ("pager", "chat", "ops")]
    senders = {r.channel_id: r for r in channels}
    pair = [Dispatcher(engine, config(), senders=senders, clock=lambda: NOW) for _ in range(2)]  # type: ignore[arg-type]
    barrier = threading.Barrier(2)

    def go(d: Dispatcher) -> None:
        barrier.wait()
        for _ in range(5):
            d.run_once(NOW)

    threads = [threading.Thread(target=go, args=(d,)) for d in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return channels, pair


def _assert_each_sent_once(engine: Engine, channels: list[Recording]) -> None:
    keys = [m.delivery_key for r in channels for m in r.sent]
    assert len(keys) == len(set(keys)) == 20 * 3
    assert {d.state for d in deliveries(engine)} == {State.SENT} and len(deliveries(engine)) == 60


def test_two_dispatchers_on_sqlite_never_send_a_delivery_twice(engine):
    channels, _ = _race(engine)
    _assert_each_sent_once(engine, channels)


def test_two_dispatchers_on_postgresql_never_send_a_delivery_twice(pg_engine):
    upgrade(pg_engine)
    channels, _ = _race(pg_engine)
    _assert_each_sent_once(pg_engine, channels)


KILLED = """
import sys
from datetime import UTC, datetime
from monitor.alerts.dispatcher import Dispatcher
from monitor.config import parse_config
from monitor.store.db import make_engine
engine = make_engine(sys.argv[1])
Dispatcher(engine, parse_config(open(sys.argv[2]).read(), env={})).run_once()
"""


def test_a_dispatcher_killed_between_claim_and_record_loses_nothing_and_sends_once(engine, tmp_path):
    """A real process claims the deliveries and is SIGKILLed before sending; after the lease, the next
    dispatcher sends each exactly once, with the idempotency key the dead one would have used."""
    outbox(engine, "open", incident_row(engine))
    config_file = tmp_path / "genstatus.yaml"
    config_file.write_text(CONFIG)
    marker = tmp_path / "claimed"
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(engine.url), str(config_file)],
                               env={**os.environ, HOLD_AFTER_CLAIM_ENV: str(marker)}, cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the dispatcher process never claimed anything"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert {d.state for d in deliveries(engine)} == {State.SENDING}
    pager, chat, ops = Recording("pager"), Recording("chat"), Recording("ops")
    survivor = Dispatcher(engine, config(), senders={"pager": pager, "chat": chat, "ops": ops})  # type: ignore[dict-item]
    assert survivor.run_once().sent == 0  # the dead one's lease has not run out
    later = datetime.now(UTC) + survivor.lease + timedelta(seconds=1)
    assert survivor.run_once(later).sent == 3
    assert survivor.run_once(later).sent == 0
    assert [[m.delivery_key for m in r.sent] for r in (pager, chat, ops)] == [["gs-1-pager"], ["gs-1-chat"], ["gs-1-ops"]]


def test_check_config_refuses_impossible_routes_and_warns_about_unused_channels(tmp_path, capsys):
    from monitor.cli import main

    path = tmp_path / "genstatus.yaml"
    path.write_text(CONFIG.replace("    - {channels: [ops]}\n", "    - {channels: [pager], services: [dalle-3]}\n"))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "service 'dalle-3' is not defined: this route would never match it" in capsys.readouterr().err
    path.write_text(CONFIG.replace("    - {channels: [ops]}\n", ""))
    assert main(["check-config", "-c", str(path)]) == 0
    assert "warning: alert channel 'ops' is not used by any route" in capsys.readouterr().err


def test_alert_test_sends_a_marked_message_and_reports_the_receiver(tmp_path, capsys):
    from monitor.cli import main
    from tests.alerts.receiver import Receiver, Reply

    with Receiver() as receiver:
        path = tmp_path / "genstatus.yaml"
        path.write_text(CONFIG.replace("    - {id: ops, type: console}\n",
                                       f"    - {{id: ops, type: webhook, url: '{receiver.url}/hook', allow_private_network: true}}\n"))
        assert main(["alert-test", "ops", "-c", str(path)]) == 0
        out = capsys.readouterr().out
        assert "alert-test ops: sent in" in out and "the receiver answered 200" in out
        body = receiver.requests[-1].json()
        assert body["test"] is True and body["headline"].startswith("[TEST] ") and body["event"] == "open"
        assert SECRET not in receiver.requests[-1].body.decode()
        receiver.reply(Reply(404, body="no such hook"))
        assert main(["alert-test", "ops", "--event", "resolved", "-c", str(path)]) == 1
        assert "FAILED, permanent" in capsys.readouterr().out
        assert receiver.requests[-1].json()["event"] == "resolve"
        assert main(["alert-test", "nope", "-c", str(path)]) == 2
        assert "no alert channel 'nope'" in capsys.readouterr().err


def test_headlines_say_what_and_how_bad():
    assert Message("k", "open", "DALL·E 3: major outage", "b").headline == "DALL·E 3: major outage — opened"
    assert Message("k", "slo_burn:fast", "DALL·E 3: error budget burning 20x", "b").headline.endswith("— SLO burn (fast window)")
    assert Message("k", "open", "X: outage", "b", test=True).headline.startswith("[TEST] ")


def test_quiet_hours_hold_back_all_but_critical_until_they_end():
    from monitor.alerts.routing import deliveries_for

    cfg = parse_config(CONFIG.replace('site: {url: "https://status.example.com"}',
                                      'site: {url: "https://status.example.com", timezone: Europe/Berlin}')
                       .replace("    - {channels: [pager], min_impact: major}\n",
                                "    - {channels: [pager], min_impact: major, quiet_hours: {start: '22:00', end: '07:00'}}\n"),
                       env={})
    night = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    morning = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    major = Event("open", Audience.PUBLIC, Impact.MAJOR, "sd3", "outage")
    assert deliveries_for(major, cfg, night) == [("pager", morning), ("ops", night)]
    critical = Event("open", Audience.PUBLIC, Impact.CRITICAL, "sd3", "outage")
    assert deliveries_for(critical, cfg, night) == [("pager", night), ("ops", night)]
    noon = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    assert deliveries_for(major, cfg, noon) == [("pager", noon), ("ops", noon)]
    early = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 05:00 in Berlin, the same quiet night
    assert deliveries_for(major, cfg, early)[0] == ("pager", morning)


def test_reminders_while_an_incident_stays_open(engine):
    cfg = parse_config(CONFIG + "  remind_every: 1h\n", env={})
    incident = incident_row(engine)
    ops = Recording("ops")
    clock = [NOW]
    d = Dispatcher(engine, cfg, senders={"pager": Recording("pager"), "chat": Recording("chat"), "ops": ops},  # type: ignore[dict-item]
                   clock=lambda: clock[0])
    d.run_once(NOW + timedelta(minutes=30))
    assert ops.sent == []  # not an hour yet
    for minutes in (61, 62, 125):
        d.run_once(NOW + timedelta(minutes=minutes))
    reminders = [m for m in ops.sent if m.event == "reminder"]
    assert len(reminders) == 2 and reminders[0].headline.endswith("— still open") and "Still investigating after" in reminders[0].body
    assert reminders[0].incident_id == incident
    with Session(engine) as session, session.begin():
        session.get(Incident, incident).resolved_at = NOW + timedelta(minutes=130)
    d.run_once(NOW + timedelta(minutes=190))
    assert len([m for m in ops.sent if m.event == "reminder"]) == 2  # none after it resolved


def test_a_quality_incident_carries_the_failing_thumbnail(engine):
    import io

    from PIL import Image

    from monitor.enums import Outcome, ProbeKind
    from monitor.store.models import ProbeResultRow, ResultImageRow

    incident = incident_row(engine, kind="quality", impact="minor")
    webp = io.BytesIO()
    Image.new("RGB", (64, 64), (250, 250, 250)).save(webp, format="WEBP")
    with Session(engine) as session, session.begin():
        result = ProbeResultRow(service_id="dalle3", canary_id="c", region="eu", kind=ProbeKind.CANARY.value,
                                started_at=NOW - timedelta(minutes=1), outcome=Outcome.DEGRADED_QUALITY.value)
        session.add(result)
        session.flush()
        result_id = result.id
        session.add(ResultImageRow(result_id=result_id, service_id="dalle3", canary_id="c", thumbnail=webp.getvalue()))
    outbox(engine, "open", incident, impact="minor")
    ops = Recording("ops")
    dispatcher(engine, ops=ops).run_once()
    (message,) = ops.sent
    assert message.image is not None and message.image.startswith(b"\x89PNG") and message.image_type == "image/png"
    assert message.image_public_url == f"https://status.example.com/images/results/{result_id}.webp"
    # a status page only reachable inside (a private address) is no place for Slack to fetch the image from
    private = parse_config(CONFIG.replace("https://status.example.com", "http://10.0.0.5:8080"), env={})
    from monitor.alerts.render import public_site_url

    assert public_site_url(private) is None and public_site_url(config()) == "https://status.example.com"


class Hanging(Recording):
    """A receiver that takes its time (a channel stuck until its own timeout)."""

    def __init__(self, channel_id: str, seconds: float) -> None:
        super().__init__(channel_id)
        self.seconds = seconds

    def send(self, message: Message) -> Receipt:
        time.sleep(self.seconds)
        raise TemporaryError("timed out")


def test_a_hanging_channel_does_not_hold_up_the_others(engine):
    outbox(engine, "open", incident_row(engine))
    pager, chat = Recording("pager"), Recording("chat")
    d = Dispatcher(engine, config(), senders={"pager": pager, "chat": chat, "ops": Hanging("ops", 2.0)},  # type: ignore[dict-item]
                   clock=lambda: datetime.now(UTC))
    began = time.monotonic()
    result = d.run_once()
    assert result.sent == 2 and result.retried == 1 and time.monotonic() - began >= 2.0
    with Session(engine) as session:
        sent = {row.channel_id: row.duration_ms for row in session.scalars(select(AlertDelivery))}
    # the other two were sent and recorded while ops hung: their own send took a fraction of the hang
    assert sent["pager"] < 1000 and sent["chat"] < 1000 and sent["ops"] >= 2000
