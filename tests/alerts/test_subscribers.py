"""Subscriber deliveries through the alert dispatcher, against a real SMTP server (aiosmtpd) and a real
HTTP receiver on loopback: who hears of what, the public wording, unsubscribe headers and links,
webhook bodies, failures that never page the operator, fan-out in batches, maintenance notices.

The helpers here (config, rows, ``drain``) are shared with tests/test_subscriptions.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.alerts import dispatcher as dispatcher_module
from monitor.alerts import subscribers
from monitor.alerts.dispatcher import Dispatcher, State
from monitor.alerts.subscribers import FAN_OUT, channel_of
from monitor.config import Config, ConfigError, parse_config
from monitor.config.subscriptions import subscription_warnings
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import AlertDelivery, AlertOutbox, Incident, Maintenance, Subscriber
from monitor.store.results import ResultStore
from tests.alerts.receiver import Receiver, Reply
from tests.alerts.test_email import Server, start_server
from web.outbox import queue_incident_event, queue_maintenance_event, queue_subscriber_confirmation

SITE_URL = "https://status.example.com"
DETAIL = "HTTP 503: upstream connect error at 10.1.2.3"


def make_config(smtp_port: int, *, site_url: str | None = SITE_URL, **subscriptions: Any) -> Config:
    settings = {"enabled": True, "email_channel": "mail", "webhooks": True, "allow_private_webhooks": True,
                "per_ip_per_hour": 50, **subscriptions}
    site = f'{{title: "Image Status", url: "{site_url}"}}' if site_url else '{title: "Image Status"}'
    flow = ", ".join(f"{key}: {str(value).lower() if isinstance(value, bool) else value}" for key, value in settings.items())
    return parse_config(f"""\
site: {site}
canaries: [{{id: c, prompt: x}}]
services:
  - {{id: dalle3, name: "DALL·E 3", group: OpenAI, provider: openai, canaries: [c]}}
  - {{id: sd3, name: "SD 3", group: Stability, provider: openai, canaries: [c]}}
alerts:
  channels:
    - {{id: mail, type: email, to: [ops@example.com], from: "Status <status@example.com>",
        smtp: {{host: 127.0.0.1, port: {smtp_port}, starttls: false, timeout: 10s}}}}
    - {{id: ops, type: console}}
  routes: [{{channels: [ops]}}]
subscriptions: {{{flow}}}
""", env={})


@pytest.fixture
def smtp() -> Iterator[Server]:
    server = start_server()
    yield server
    server.controller.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def db(tmp_path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'subscribers.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def catalog(engine: Engine, config: Config) -> None:
    ResultStore(engine).sync_catalog(config)


def add_subscriber(engine: Engine, address: str, *, kind: str = "email", services: list[str] | None = None,
                   confirmed: bool = True) -> Subscriber:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        row = Subscriber(kind=kind, address=address, services=services, token=f"tok-{address}-{time.monotonic_ns()}"[-60:],
                         created_at=now, confirmed_at=now if confirmed else None)
        session.add(row)
    return row


def add_incident(engine: Engine, *, service: str = "dalle3", audience: str = "public", title: str = "DALL·E 3: major outage",
                 public_title: str | None = None, public_body: str | None = None, kind: str = "outage",
                 impact: str = "major") -> int:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        row = Incident(service_id=service, kind=kind, audience=audience, impact=impact, status="investigating",
                       title=title, public_title=public_title, public_body=public_body, regions=["eu"],
                       started_at=now - timedelta(minutes=5), detected_at=now)
        session.add(row)
        session.flush()
        return row.id


def detector_event(engine: Engine, incident_id: int, event: str = "open") -> int:
    """An outbox row as the detector writes it: its body is the operator's account, with an error detail."""
    with Session(engine) as session, session.begin():
        incident = session.get(Incident, incident_id)
        assert incident is not None
        row = AlertOutbox(created_at=datetime.now(UTC), incident_id=incident.id, service_id=incident.service_id, event=event,
                          audience=incident.audience, impact=incident.impact, title=incident.title, attempts=0,
                          body=f"Confirmed outage problem in eu: server_error (3); e.g. {DETAIL}.")
        session.add(row)
        session.flush()
        return row.id


def drain(dispatcher: Dispatcher, rounds: int = 30) -> None:
    """Dispatch rounds until one finds nothing to do (routing, fan-out and sending take a round each)."""
    for _ in range(rounds):
        result = dispatcher.run_once(datetime.now(UTC))
        if not (result.routed or result.sent or result.failed or result.retried or result.subscriber_deliveries):
            return
    raise AssertionError(f"still dispatching after {rounds} rounds")


def mails_to(server: Server, address: str) -> list[EmailMessage]:
    return [mail for mail, (_, rcpts) in zip(server.handler.messages, server.handler.envelopes) if rcpts == [address]]


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    return plain.get_content(), html.get_content()


def operator_notices(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(AlertOutbox).where(AlertOutbox.event == "channel_failing")) or 0


# -- who hears of what ------------------------------------------------------------------


def test_a_public_incident_reaches_each_confirmed_matching_subscriber_once(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    everything = add_subscriber(db, "all@example.com")
    dalle = add_subscriber(db, "dalle@example.com", services=["dalle3"])
    add_subscriber(db, "sd@example.com", services=["sd3"])
    add_subscriber(db, "pending@example.com", confirmed=False)
    detector_event(db, add_incident(db))

    drain(Dispatcher(db, config))

    assert sorted(rcpts[0] for _, rcpts in smtp.handler.envelopes) == ["all@example.com", "dalle@example.com"]
    for subscriber in (everything, dalle):
        [mail] = mails_to(smtp, subscriber.address)
        unsubscribe = f"{SITE_URL}/unsubscribe/{subscriber.token}"
        assert mail["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["To"] == subscriber.address and mail["Subject"] == "[Image Status] Investigating: DALL·E 3: major outage"
        plain, html = parts(mail)
        assert f"Unsubscribe: {unsubscribe}" in plain and f'href="{unsubscribe}"' in html
        assert "We are investigating a major outage affecting DALL·E 3." in plain
        for operator_detail in (DETAIL, "server_error", "10.1.2.3", "ops@example.com"):
            assert operator_detail not in plain and operator_detail not in html
    assert [r for _, r in smtp.handler.envelopes].count(["ops@example.com"]) == 0  # the mail channel is not routed


def test_operator_incidents_reminders_and_slo_alerts_never_reach_subscribers(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    add_subscriber(db, "all@example.com")
    detector_event(db, add_incident(db, audience="operator", kind="operator", title="dalle3: probe credentials problem"))
    public = add_incident(db, service="sd3")
    detector_event(db, public, event="reminder")
    with Session(db) as session, session.begin():
        session.add(AlertOutbox(created_at=datetime.now(UTC), service_id="sd3", event="slo_burn:fast", audience="public",
                                impact="major", title="SD 3: SLO burn", body="burning", attempts=0))

    drain(Dispatcher(db, config))

    assert smtp.handler.messages == []
    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(AlertDelivery)
                              .where(AlertDelivery.channel_id.startswith("subscriber:"))) == 0


def test_nothing_is_sent_to_an_unconfirmed_subscriber_even_with_a_delivery_written(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    pending = add_subscriber(db, "pending@example.com", confirmed=False)
    outbox = detector_event(db, add_incident(db))
    with Session(db) as session, session.begin():  # as if written before the subscriber was unconfirmed
        session.add(AlertDelivery(outbox_id=outbox, channel_id=channel_of(pending.id), key="gs-x", state="pending",
                                  created_at=datetime.now(UTC), attempts=0, next_attempt_at=datetime.now(UTC)))

    drain(Dispatcher(db, config))

    assert smtp.handler.messages == []
    with Session(db) as session:
        row = session.scalar(select(AlertDelivery).where(AlertDelivery.key == "gs-x"))
        assert row is not None and row.state == State.FAILED and row.last_error == "the subscriber has not confirmed"
    assert operator_notices(db) == 0


def test_public_wording_overrides_and_hostile_titles_are_escaped(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    add_subscriber(db, "all@example.com")
    incident = add_incident(db, title="dalle3: internal title", public_title='<script>alert("x")</script> & <b>outage</b>',
                            public_body="We are working with <the provider>.")
    detector_event(db, incident, event="open")

    drain(Dispatcher(db, config))

    [mail] = mails_to(smtp, "all@example.com")
    plain, html = parts(mail)
    assert "<script>" not in html and "<b>outage" not in html and "<the provider>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;outage&lt;/b&gt;" in html
    assert "We are working with &lt;the provider&gt;." in html
    assert '<script>alert("x")</script> & <b>outage</b>' in plain  # plain text is plain
    assert "internal title" not in plain and "internal title" not in mail["Subject"]


def test_an_update_written_by_hand_is_sent_as_written_and_threads(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    add_subscriber(db, "all@example.com")
    incident_id = add_incident(db)
    detector_event(db, incident_id)
    dispatcher = Dispatcher(db, config)
    drain(dispatcher)
    with Session(db) as session, session.begin():
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert queue_incident_event(session, incident, "identified", "The provider found a faulty load balancer.")

    drain(dispatcher)

    first, second = mails_to(smtp, "all@example.com")
    plain, _ = parts(second)
    assert second["Subject"] == "[Image Status] Identified: DALL·E 3: major outage"
    assert "The provider found a faulty load balancer." in plain
    assert second["In-Reply-To"] == first["Message-ID"]


# -- confirmation -------------------------------------------------------------------------


def test_a_confirmation_goes_to_the_one_unconfirmed_subscriber_with_its_link(db, smtp) -> None:
    config = make_config(smtp.port)
    add_subscriber(db, "other@example.com")
    pending = add_subscriber(db, "new@example.com", confirmed=False)
    with Session(db) as session, session.begin():
        row = session.get(Subscriber, pending.id)
        assert row is not None
        assert queue_subscriber_confirmation(session, row)
        assert not queue_subscriber_confirmation(session, row)  # within resend_confirmation_after: not again

    drain(Dispatcher(db, config))

    [mail] = smtp.handler.messages
    assert mail["To"] == "new@example.com" and mail["Subject"] == "[Image Status] Confirm your subscription: Image Status"
    plain, html = parts(mail)
    assert f"{SITE_URL}/subscribe/confirm/{pending.token}" in plain
    assert f'href="{SITE_URL}/subscribe/confirm/{pending.token}"' in html
    assert mail["List-Unsubscribe"] == f"<{SITE_URL}/unsubscribe/{pending.token}>"


# -- webhooks --------------------------------------------------------------------------------


def test_a_webhook_subscriber_gets_json_with_its_unsubscribe_url(db, smtp, hook) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    subscriber = add_subscriber(db, f"{hook.url}/status-hook?key=abc", kind="webhook", services=["dalle3"])
    incident = add_incident(db)
    detector_event(db, incident)

    drain(Dispatcher(db, config))

    [request] = hook.requests
    assert request.path == "/status-hook?key=abc"
    body = request.json()
    assert body["schema"] == "genstatus.subscription/v1" and body["event"] == "open"
    assert body["unsubscribe_url"] == f"{SITE_URL}/unsubscribe/{subscriber.token}"
    assert body["confirm_url"] is None
    assert body["incident"]["id"] == incident and body["incident"]["title"] == "DALL·E 3: major outage"
    assert body["incident"]["url"] == f"{SITE_URL}/#incident-{incident}"
    assert body["site"] == {"title": "Image Status", "url": SITE_URL}
    assert DETAIL not in request.body.decode()
    assert request.headers["x-genstatus-delivery"] == body["delivery"] and request.headers["x-genstatus-event"] == "open"


def test_a_gone_webhook_is_dropped_after_repeated_410s_without_paging_the_operator(db, smtp, hook) -> None:
    config = make_config(smtp.port, drop_webhook_after=2)
    catalog(db, config)
    gone = add_subscriber(db, f"{hook.url}/gone", kind="webhook")
    hook.reply(Reply(410, b"gone"), Reply(410, b"gone"))
    dispatcher = Dispatcher(db, config)
    detector_event(db, add_incident(db))
    drain(dispatcher)
    with Session(db) as session:
        assert session.get(Subscriber, gone.id) is not None  # one 410 is not enough
    detector_event(db, add_incident(db, service="sd3"))
    drain(dispatcher)

    with Session(db) as session:
        assert session.get(Subscriber, gone.id) is None
    assert len(hook.requests) == 2 and operator_notices(db) == 0 and dispatcher.failing == {}


def test_a_private_webhook_is_refused_unless_allowed_and_the_operator_is_not_paged(db, smtp, hook) -> None:
    config = make_config(smtp.port, allow_private_webhooks=False)
    catalog(db, config)
    subscriber = add_subscriber(db, f"{hook.url}/hook", kind="webhook")
    detector_event(db, add_incident(db))

    drain(Dispatcher(db, config))

    assert hook.requests == [] and operator_notices(db) == 0
    with Session(db) as session:
        row = session.scalar(select(AlertDelivery).where(AlertDelivery.channel_id == channel_of(subscriber.id)))
        assert row is not None and row.state == State.FAILED and "non-public address" in (row.last_error or "")


def test_a_refused_address_is_kept_out_of_the_stored_error(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    subscriber = add_subscriber(db, "nobody@example.com")
    smtp.handler.refuse["nobody@example.com"] = "550 5.1.1 nobody@example.com: no such user"
    detector_event(db, add_incident(db))

    drain(Dispatcher(db, config))

    with Session(db) as session:
        row = session.scalar(select(AlertDelivery).where(AlertDelivery.channel_id == channel_of(subscriber.id)))
        assert row is not None and row.state == State.FAILED
        assert "nobody@example.com" not in (row.last_error or "") and "[subscriber]" in (row.last_error or "")
    assert operator_notices(db) == 0


# -- scale ---------------------------------------------------------------------------------------


def test_a_thousand_subscribers_are_fanned_out_in_batches_and_alerts_go_first(db, smtp, monkeypatch) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    now = datetime.now(UTC)
    with Session(db) as session, session.begin():
        session.add_all([Subscriber(kind="email", address=f"s{i}@example.com", token=f"token-{i:06d}-xxxxxxxxxxxxxxxx",
                                    services=None if i % 2 else ["dalle3"], created_at=now, confirmed_at=now)
                         for i in range(1000)])
    batches: list[int] = []
    real_insert = subscribers.insert

    def counting_insert(table):  # every batch is one INSERT of its own transaction
        statement = real_insert(table)
        batches.append(1)
        return statement

    monkeypatch.setattr(subscribers, "insert", counting_insert)
    outbox = detector_event(db, add_incident(db, service="sd3"))  # the 500 all-services subscribers
    dispatcher = Dispatcher(db, config)
    began = time.perf_counter()
    dispatcher.run_once(datetime.now(UTC))  # routes the row and writes the fan-out delivery, then runs it
    fanned = time.perf_counter() - began

    with Session(db) as session:
        written = session.scalars(select(AlertDelivery.channel_id).where(
            AlertDelivery.outbox_id == outbox, AlertDelivery.channel_id.startswith("subscriber:"),
            AlertDelivery.channel_id != FAN_OUT)).all()
        fan = session.scalar(select(AlertDelivery).where(AlertDelivery.channel_id == FAN_OUT))
    assert len(written) == len(set(written)) == 500
    assert len(batches) == 1000 // subscribers.FAN_OUT_BATCH  # 500 per transaction, walked in id order
    assert fan is not None and fan.state == State.SENT and fan.receiver_status == "500 subscriber deliveries"
    print(f"fan-out of 1000 subscribers (500 matching): {fanned * 1000:.0f} ms")

    # run again (a fan-out cut short is claimed again): nothing is written twice
    assert subscribers.fan_out(db, outbox, config, datetime.now(UTC)) == 0

    # an operator alert arriving now is sent in the next round, ahead of the 500 pending subscriber emails
    from monitor.alerts.channels.base import Receipt

    class Ops:
        channel_id, timeout, sent = "ops", 5.0, 0

        def send(self, message):
            Ops.sent += 1
            return Receipt("ok")

    dispatcher.senders["ops"] = Ops()
    monkeypatch.setattr(dispatcher_module, "SEND_BATCH", 3)
    detector_event(db, add_incident(db, audience="operator", kind="operator", title="probe problem"))
    dispatcher.run_once(datetime.now(UTC))
    assert Ops.sent == 1 and len(smtp.handler.messages) == 2


# -- maintenance ------------------------------------------------------------------------------


def test_maintenance_notices_reach_the_subscribers_of_its_services(db, smtp) -> None:
    config = make_config(smtp.port)
    catalog(db, config)
    add_subscriber(db, "dalle@example.com", services=["dalle3"])
    add_subscriber(db, "sd@example.com", services=["sd3"])
    add_subscriber(db, "all@example.com")
    now = datetime.now(UTC)
    with Session(db) as session, session.begin():
        window = Maintenance(title="Database upgrade", body="", services=["sd3"], starts_at=now + timedelta(minutes=30),
                             ends_at=now + timedelta(hours=2), status="scheduled", created_at=now, updated_at=now)
        session.add(window)
        session.flush()
        window_id = window.id
        assert queue_maintenance_event(session, window, "maintenance_scheduled", "Expect a few minutes of errors.")
        assert not queue_maintenance_event(session, window, "maintenance_scheduled", "again")  # once per window
    dispatcher = Dispatcher(db, config)
    drain(dispatcher)

    assert sorted(rcpts[0] for _, rcpts in smtp.handler.envelopes) == ["all@example.com", "sd@example.com"]
    plain, _ = parts(mails_to(smtp, "sd@example.com")[0])
    assert "Scheduled maintenance: Database upgrade" in plain and "Expect a few minutes of errors." in plain
    assert "Services: SD 3" in plain

    # the dispatcher writes "started" when the time comes, and "completed" after it, once each
    dispatcher.run_once(now + timedelta(minutes=31))
    dispatcher.run_once(now + timedelta(minutes=32))  # within the housekeeping interval: nothing new
    drain(dispatcher)
    with Session(db, expire_on_commit=False) as session, session.begin():
        row = session.get(Maintenance, window_id)
        assert row is not None
        row.status, row.updated_at = "completed", datetime.now(UTC)
    dispatcher.run_once(now + timedelta(minutes=40))
    drain(dispatcher)
    subjects = [m["Subject"] for m in mails_to(smtp, "sd@example.com")]
    assert subjects == ["[Image Status] Scheduled maintenance: Database upgrade",
                        "[Image Status] Maintenance in progress: Database upgrade",
                        "[Image Status] Maintenance completed: Database upgrade"]


def test_unconfirmed_addresses_are_forgotten_after_confirm_within(db, smtp) -> None:
    config = make_config(smtp.port, confirm_within="1h")
    stale = add_subscriber(db, "stale@example.com", confirmed=False)
    fresh = add_subscriber(db, "fresh@example.com", confirmed=False)
    kept = add_subscriber(db, "kept@example.com")
    with Session(db) as session, session.begin():
        for row_id in (stale.id, kept.id):
            row = session.get(Subscriber, row_id)
            assert row is not None
            row.created_at = datetime.now(UTC) - timedelta(hours=2)

    Dispatcher(db, config).run_once(datetime.now(UTC))

    with Session(db) as session:
        assert {s.address for s in session.scalars(select(Subscriber))} == {fresh.address, kept.address}


# -- config -------------------------------------------------------------------------------------


def test_check_config_refuses_an_email_channel_that_is_not_email_and_warns_without_site_url() -> None:
    with pytest.raises(ConfigError, match="email_channel 'ops' is a console channel"):
        make_config(25, email_channel="ops")
    with pytest.raises(ConfigError, match="email_channel 'nope' is not defined"):
        make_config(25, email_channel="nope")
    with pytest.raises(ConfigError, match="neither an email_channel nor webhooks"):
        make_config(25, email_channel="null", webhooks=False)
    assert subscription_warnings(make_config(25)) == []
    [warning] = subscription_warnings(make_config(25, site_url=None))
    assert "site.url is not set" in warning


def test_without_site_url_nothing_is_sent(db, smtp) -> None:
    config = make_config(smtp.port, site_url=None)
    catalog(db, config)
    add_subscriber(db, "all@example.com")
    detector_event(db, add_incident(db))

    drain(Dispatcher(db, config))

    assert smtp.handler.messages == [] and operator_notices(db) == 0
