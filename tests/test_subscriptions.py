"""Visitor subscriptions end to end: the public form (CSRF, rate limit, validation), double opt-in by
email and webhook through the real dispatcher, a real SMTP server and a real HTTP receiver on
loopback, confirmation and unsubscribing by button and by RFC 8058 one-click POST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from monitor.alerts.dispatcher import Dispatcher
from monitor.config import Config
from monitor.config.subscriptions import confirm_key
from monitor.store.models import AlertOutbox, Subscriber
from tests.alerts.receiver import Receiver
from tests.alerts.test_email import Server
from tests.alerts.test_subscribers import (
    SITE_URL,
    add_incident,
    catalog,
    db,
    detector_event,
    drain,
    hook,
    mails_to,
    make_config,
    parts,
    smtp,
)
from web import create_app

__all__ = ["db", "hook", "smtp"]  # fixtures, used by name

NO_SMTP = 25
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_client(engine, config: Config) -> FlaskClient:
    return create_app(config, engine=engine, testing=True).test_client()


def csrf_of(client: FlaskClient, path: str = "/subscribe") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def subscribe(client: FlaskClient, token: str | None = None, **form: str | list[str]):
    data: dict = {"kind": "email", "scope": "all", **form}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/subscribe", data=data)


def subscribers(engine) -> list[Subscriber]:
    with Session(engine) as session:
        return list(session.scalars(select(Subscriber).order_by(Subscriber.id)))


def row_id(engine) -> int:
    [row] = subscribers(engine)
    return row.id


def confirmations(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(AlertOutbox)
                              .where(AlertOutbox.event == "subscribe_confirm")) or 0


@pytest.fixture
def setup(db, smtp) -> Iterator[tuple]:
    """The site and a dispatcher sending to the SMTP server."""
    config = make_config(smtp.port)
    catalog(db, config)
    yield config, app_client(db, config), Dispatcher(db, config)


@pytest.fixture
def site(db) -> tuple[Config, FlaskClient]:
    """The site alone (its mail server is never reached)."""
    config = make_config(NO_SMTP)
    catalog(db, config)
    return config, app_client(db, config)


def test_subscribe_confirm_notify_and_one_click_unsubscribe_by_email(db, smtp: Server, setup) -> None:
    config, client, dispatcher = setup
    answer = subscribe(client, csrf_of(client), email="Reader@Example.com ")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [row] = subscribers(db)
    assert (row.kind, row.address, row.services, row.confirmed_at) == ("email", "reader@example.com", None, None)

    # before confirming: exactly one message, the confirmation, and no incident news
    detector_event(db, add_incident(db))
    drain(dispatcher)
    [mail] = smtp.handler.messages
    assert mail["To"] == "reader@example.com" and "Confirm your subscription" in mail["Subject"]
    plain, html = parts(mail)
    link = f"{SITE_URL}/subscribe/confirm/{row.token}"
    assert link in plain and f'href="{link}"' in html
    assert mail["List-Unsubscribe"] == f"<{SITE_URL}/unsubscribe/{row.token}>"

    # opening the link (as a mail scanner would) changes nothing; the button's POST confirms
    page = client.get(f"/subscribe/confirm/{row.token}")
    assert page.status_code == 200 and "Confirm subscription" in page.text
    assert subscribers(db)[0].confirmed_at is None
    assert client.post(f"/subscribe/confirm/{row.token}").status_code == 400  # no CSRF token: refused
    assert subscribers(db)[0].confirmed_at is None
    done = client.post(f"/subscribe/confirm/{row.token}", data={"csrf_token": csrf_of(client, f"/subscribe/confirm/{row.token}")})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert subscribers(db)[0].confirmed_at is not None

    # now an incident event reaches it, with the unsubscribe link and headers; an operator incident does not
    detector_event(db, add_incident(db, service="sd3", title="SD 3: partial outage", impact="minor"))
    detector_event(db, add_incident(db, audience="operator", kind="operator", title="dalle3: probe problem"))
    drain(dispatcher)
    confirm_mail, news = mails_to(smtp, "reader@example.com")
    assert news["Subject"] == "[Image Status] Investigating: SD 3: partial outage"
    assert news["List-Unsubscribe"] == f"<{SITE_URL}/unsubscribe/{row.token}>"
    assert news["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain, html = parts(news)
    assert f"Unsubscribe: {SITE_URL}/unsubscribe/{row.token}" in plain and "probe problem" not in plain

    # RFC 8058 one-click: a POST from the mail client, no cookie and no CSRF token, removes the row
    mail_client = app_client(db, config)
    gone = mail_client.post(f"/unsubscribe/{row.token}", data={"List-Unsubscribe": "One-Click"})
    assert gone.status_code == 200 and subscribers(db) == []
    detector_event(db, add_incident(db, service="sd3", kind="latency", title="SD 3: slow image generation"))
    drain(dispatcher)
    assert len(smtp.handler.messages) == 2


def test_a_webhook_subscription_is_confirmed_through_the_link_it_receives(db, smtp: Server, hook: Receiver, setup) -> None:
    config, client, dispatcher = setup
    url = f"{hook.url}/hooks/status"
    answer = subscribe(client, csrf_of(client), kind="webhook", url=url, scope="some", service=["dalle3"])
    assert answer.status_code == 200 and "Check your webhook" in answer.text
    [row] = subscribers(db)
    assert (row.kind, row.address, row.services) == ("webhook", url, ["dalle3"])
    detector_event(db, add_incident(db))
    drain(dispatcher)

    [confirmation] = hook.requests
    body = confirmation.json()
    assert body["event"] == "subscribe_confirm" and body["confirm_url"] == f"{SITE_URL}/subscribe/confirm/{row.token}"
    assert body["unsubscribe_url"] == f"{SITE_URL}/unsubscribe/{row.token}" and body["incident"] is None

    path = body["confirm_url"].removeprefix(SITE_URL)
    assert client.post(path, data={"csrf_token": csrf_of(client, path)}).status_code == 200
    incident = add_incident(db, kind="latency", title="DALL·E 3: slow image generation", impact="minor")
    detector_event(db, incident)
    drain(dispatcher)
    _, news = hook.requests
    assert news.json()["incident"]["id"] == incident
    assert news.json()["unsubscribe_url"] == f"{SITE_URL}/unsubscribe/{row.token}"
    assert smtp.handler.messages == []


def test_the_form_is_refused_without_its_csrf_token_or_from_another_site(db, site) -> None:
    config, client = site
    assert subscribe(client, email="a@example.com").status_code == 400
    assert subscribe(client, "forged-token", email="a@example.com").status_code == 400
    stranger = app_client(db, config)  # another browser: its own session, so this page's token is not its own
    assert subscribe(stranger, csrf_of(client), email="a@example.com").status_code == 400
    assert subscribers(db) == [] and confirmations(db) == 0


def test_subscribe_requests_are_limited_per_client_address(db) -> None:
    config = make_config(NO_SMTP, per_ip_per_hour=3)
    client = app_client(db, config)
    token = csrf_of(client)
    answers = [subscribe(client, token, email=f"r{i}@example.com").status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = subscribe(client, token, email="r9@example.com")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert len(subscribers(db)) == 3
    other = client.application.test_client()  # another browser on the same address
    assert subscribe(other, csrf_of(other), email="x@example.com").status_code == 429


INVALID = [
    ("email", ""),
    ("email", "no-at-sign"),
    ("email", "a@b"),
    ("email", "name@example.com\r\nBcc: victim@example.org"),
    ("email", "two@@example.com"),
    ("email", "dots..@example.com"),
    ("email", "x" * 65 + "@example.com"),
    ("email", "a@" + "b" * 250 + ".com"),
    ("url", ""),
    ("url", "ftp://example.com/hook"),
    ("url", "javascript:alert(1)"),
    ("url", "https://"),
    ("url", "https://10.0.0.7/hook"),
    ("url", "http://[::1]:8080/hook"),
    ("url", "https://example.com:99999/hook"),
    ("url", "https://example.com/" + "a" * 500),
    ("url", 'https://example.com/"><script>alert(1)</script>'),
]


def test_invalid_addresses_are_refused_and_echoed_escaped(db) -> None:
    client = app_client(db, make_config(NO_SMTP, allow_private_webhooks=False))
    token = csrf_of(client)
    for field, value in INVALID:
        answer = subscribe(client, token, kind="email" if field == "email" else "webhook", **{field: value})
        assert answer.status_code == 400 and "form-errors" in answer.text, (field, value)
        assert "\r\nBcc" not in answer.text and "<script>" not in answer.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text  # the last one, echoed in its field
    assert subscribers(db) == []
    assert subscribe(client, token, kind="webhook", url="https://hooks.example.com/status?x=1").status_code == 200
    assert subscribe(client, token, kind="email", email="first.last+tag@sub.example.co.uk").status_code == 200


def test_chosen_services_must_be_listed(db, site) -> None:
    _, client = site
    assert subscribe(client, csrf_of(client), email="a@example.com", scope="some").status_code == 400
    assert subscribe(client, csrf_of(client), email="a@example.com", scope="some", service=["nope"]).status_code == 400
    assert subscribe(client, csrf_of(client), email="a@example.com", scope="some", service=["sd3"]).status_code == 200
    assert [s.services for s in subscribers(db)] == [["sd3"]]


def test_the_same_address_twice_reuses_the_row_and_resends_at_most_every_few_minutes(db, site) -> None:
    _, client = site
    for _ in range(3):
        assert subscribe(client, csrf_of(client), email="twice@example.com").status_code == 200
    assert len(subscribers(db)) == 1 and confirmations(db) == 1
    with Session(db) as session, session.begin():  # as if the first request had been 11 minutes ago
        subscriber_id = row_id(db)
        for request in session.scalars(select(AlertOutbox)):
            request.created_at -= timedelta(minutes=11)
            request.dedupe_key = confirm_key(subscriber_id, request.created_at)
    assert subscribe(client, csrf_of(client), email="twice@example.com", scope="some", service=["dalle3"]).status_code == 200
    [row] = subscribers(db)
    assert confirmations(db) == 2 and row.services == ["dalle3"]

    # once confirmed, the form changes nothing and sends nothing (the answer is the same: no one learns who subscribed)
    with Session(db) as session, session.begin():
        confirmed = session.get(Subscriber, row.id)
        assert confirmed is not None
        confirmed.confirmed_at = datetime.now(UTC)
        session.execute(delete(AlertOutbox))
    answer = subscribe(client, csrf_of(client), email="twice@example.com")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert confirmations(db) == 0 and subscribers(db)[0].services == ["dalle3"]


def test_unsubscribe_page_needs_its_button_and_the_button_needs_its_token(db, site) -> None:
    _, client = site
    subscribe(client, csrf_of(client), email="bye@example.com")
    [row] = subscribers(db)
    page = client.get(f"/unsubscribe/{row.token}")
    assert page.status_code == 200 and "Unsubscribe" in page.text and len(subscribers(db)) == 1
    assert client.post(f"/unsubscribe/{row.token}").status_code == 400  # neither CSRF nor one-click
    assert client.post(f"/unsubscribe/{row.token}", data={"List-Unsubscribe": "yes"}).status_code == 400
    assert len(subscribers(db)) == 1
    done = client.post(f"/unsubscribe/{row.token}", data={"csrf_token": csrf_of(client, f"/unsubscribe/{row.token}")})
    assert done.status_code == 200 and "You are unsubscribed" in done.text and subscribers(db) == []
    assert client.get(f"/unsubscribe/{row.token}").status_code == 404
    assert client.get("/subscribe/confirm/not-a-token").status_code == 404


def test_pages_are_private_and_list_the_services(db, site) -> None:
    _, client = site
    page = client.get("/subscribe")
    assert page.headers["Cache-Control"] == "no-store" and "<script" not in page.text
    for name in ("DALL·E 3", "SD 3", 'value="dalle3"', 'value="sd3"'):
        assert name in page.text


def test_without_site_url_the_page_says_subscriptions_are_unavailable(db) -> None:
    client = app_client(db, make_config(NO_SMTP, site_url=None))
    page = client.get("/subscribe")
    assert page.status_code == 200 and "Subscriptions are unavailable" in page.text and "<form" not in page.text
    assert subscribe(client, "t", email="a@example.com").status_code == 503
    assert subscribers(db) == []


def test_disabled_subscriptions_are_not_offered_but_unsubscribing_still_works(db) -> None:
    config = make_config(NO_SMTP, enabled=False)
    client = app_client(db, config)
    assert client.get("/subscribe").status_code == 404
    now = datetime.now(UTC)
    with Session(db) as session, session.begin():
        session.add(Subscriber(kind="email", address="old@example.com", token="t" * 43, created_at=now, confirmed_at=now))
    assert client.get(f"/subscribe/confirm/{'t' * 43}").status_code == 404
    assert client.post(f"/unsubscribe/{'t' * 43}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert subscribers(db) == []


def test_an_expired_confirmation_link_is_refused(db, site) -> None:
    _, client = site
    subscribe(client, csrf_of(client), email="late@example.com")
    with Session(db) as session, session.begin():
        row = session.scalars(select(Subscriber)).one()
        row.created_at -= timedelta(days=8)
        token = row.token
    assert client.get(f"/subscribe/confirm/{token}").status_code == 404
    assert client.post(f"/subscribe/confirm/{token}", data={"csrf_token": csrf_of(client)}).status_code == 404
    assert subscribers(db)[0].confirmed_at is None


def test_check_config_warns_about_a_missing_site_url_and_not_about_the_subscriber_mail_channel(tmp_path, capsys):
    from monitor.cli import main

    config = tmp_path / "genstatus.yaml"
    config.write_text(
        "alerts:\n"
        "  channels:\n"
        "    - {id: mail, type: email, to: [ops@example.com], from: status@example.com, smtp: {host: 127.0.0.1}}\n"
        "subscriptions: {enabled: true, email_channel: mail}\n", encoding="utf-8")
    assert main(["check-config", "-c", str(config)]) == 0
    warnings = capsys.readouterr().err
    assert "site.url is not set" in warnings
    assert "not used by any route" not in warnings  # it sends subscriber mail
