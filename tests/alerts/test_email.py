"""The email channel against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import io
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from PIL import Image

from monitor.alerts.channels.base import PermanentError, TemporaryError
from monitor.alerts.channels.email import EmailSender
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import EmailChannel

SITE = SiteConfig(title="Image Generation Status", url="https://status.example.com")
PASSWORD = "s3cret-smtp-password"


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it receives and answers as a test tells it to."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply ("550 ...", "451 ...")
    sender_reply: str | None = None  # a MAIL FROM refusal
    data_reply: str | None = None  # e.g. "451 try again later"
    delay: float = 0.0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.sender_reply:
            return self.sender_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        if self.data_reply:
            return self.data_reply
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    handler: Recorder
    port: int
    controller: Controller


def start_server(**smtp_kwargs: Any) -> Server:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    return Server(handler, port, controller)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.controller.stop()


def channel(port: int, **smtp: Any) -> EmailChannel:
    return EmailChannel.model_validate({
        "id": "mail", "type": "email", "to": ["ops@example.com", "oncall@example.org"],
        "from": "Status Bot <alerts@example.com>",
        "smtp": {"host": "127.0.0.1", "port": port, "starttls": False, **smtp},
    })


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "delivery_key": "outbox-7-mail", "event": "open", "title": "DALL·E 3: major outage",
        "body": "Confirmed outage in eu-west: server_error (3), timeout (1); e.g. HTTP 503: upstream connect error.",
        "impact": "major", "incident_id": 7, "service": "dalle3", "service_name": "DALL·E 3", "group": "OpenAI",
        "kind": "outage", "regions": ("eu-west", "us-east"), "started_at": datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
        "since": "2026-05-01 10:30 UTC", "outcomes": (("server_error", 3), ("timeout", 1)),
        "example": "HTTP 503: upstream connect error", "url": "https://status.example.com/#incident-7",
    }
    fields.update(overrides)
    return Message(**fields)


def parts(mail: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    return plain, html


def test_headers_and_both_parts(server: Server) -> None:
    sender = EmailSender(channel(server.port), SITE)
    msg = message()
    receipt = sender.send(msg)

    [mail] = server.handler.messages
    assert mail["Subject"] == msg.headline == "DALL·E 3: major outage — opened"
    assert mail["From"].addresses[0].addr_spec == "alerts@example.com"
    assert [a.addr_spec for a in mail["To"].addresses] == ["ops@example.com", "oncall@example.org"]
    assert server.handler.envelopes == [("alerts@example.com", ["ops@example.com", "oncall@example.org"])]
    sent = parsedate_to_datetime(mail["Date"])
    assert sent.utcoffset() == timedelta(0) and abs(sent - datetime.now(UTC)) < timedelta(minutes=1)
    assert mail["Message-ID"] == "<outbox-7-mail.genstatus@example.com>"
    assert "In-Reply-To" not in mail and "References" not in mail
    assert receipt.status == "250" and receipt.thread == {"message_id": "<outbox-7-mail.genstatus@example.com>"}

    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    plain, html = parts(mail)
    assert plain.get_content().replace("\r\n", "\n") == msg.text()
    body = html.get_content()
    assert "DALL·E 3: major outage — opened" in body
    for fact in ("OpenAI", "eu-west, us-east", "2026-05-01 10:30 UTC", "server_error (3), timeout (1)",
                 "HTTP 503: upstream connect error"):
        assert fact in body
    assert '<a href="https://status.example.com/#incident-7"' in body
    assert "<style" not in body  # inline CSS only


def test_message_id_is_derived_from_the_delivery_key() -> None:
    sender = EmailSender(channel(25), SITE)
    first = sender.compose(message(delivery_key="outbox:12/slack ops"))
    again = sender.compose(message(delivery_key="outbox:12/slack ops"))
    other = sender.compose(message(delivery_key="outbox:12/slack-ops"))
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"] == "<outbox=3A12=2Fslack=20ops.genstatus@example.com>"  # a valid msg-id, reversible


def test_default_sender_uses_the_site(server: Server) -> None:
    config = channel(server.port).model_copy(update={"sender": None})
    EmailSender(config, SITE).send(message())
    [mail] = server.handler.messages
    [address] = mail["From"].addresses
    assert (address.display_name, address.addr_spec) == ("Image Generation Status", "genstatus@status.example.com")
    assert mail["Message-ID"] == "<outbox-7-mail.genstatus@status.example.com>"


def test_inline_image_in_multipart_related(server: Server) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(png, format="PNG")
    EmailSender(channel(server.port), SITE).send(message(kind="quality", image=png.getvalue()))

    [mail] = server.handler.messages
    plain, related = list(mail.iter_parts())
    assert (plain.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    html, image = list(related.iter_parts())
    assert (html.get_content_type(), image.get_content_type()) == ("text/html", "image/png")
    assert image.get_content() == png.getvalue()
    cid = image["Content-ID"].strip("<>")
    assert f'<img src="cid:{cid}"' in html.get_content()


def test_resolve_threads_under_the_open(server: Server) -> None:
    sender = EmailSender(channel(server.port), SITE)
    opened = sender.send(message(delivery_key="outbox-7-mail"))
    sender.send(message(delivery_key="outbox-9-mail", event="resolve", thread=opened.thread))

    first, second = server.handler.messages
    assert second["Subject"] == "DALL·E 3: major outage — resolved"
    assert second["Message-ID"] != first["Message-ID"]
    assert second["In-Reply-To"] == first["Message-ID"] == opened.thread["message_id"]
    assert second["References"] == first["Message-ID"]


def test_hostile_values_are_escaped() -> None:
    hostile = message(title="<script>alert(1)</script> & co", example='"><img src=x onerror=alert(1)>',
                      service_name="<b>bold</b>", body="line one\n<iframe src=evil>", url="javascript:alert(1)")
    _, html = parts(EmailSender(channel(25), SITE).compose(hostile))
    body = html.get_content()
    assert "<script>" not in body and "<img src=x" not in body and "<iframe" not in body and "<b>bold" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in body
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in body
    assert "javascript:" not in body  # only http(s) incident links become links


def test_recipients_refused_with_550_is_permanent(server: Server) -> None:
    server.handler.refuse = {"ops@example.com": "550 5.1.1 no such user", "oncall@example.org": "550 5.1.1 no such user"}
    with pytest.raises(PermanentError) as caught:
        EmailSender(channel(server.port), SITE).send(message())
    assert caught.value.status == "550"
    assert "ops@example.com" in caught.value.reason


def test_one_recipient_refused_is_reported_not_retried(server: Server) -> None:
    server.handler.refuse = {"oncall@example.org": "550 5.1.1 no such user"}
    receipt = EmailSender(channel(server.port), SITE).send(message())
    assert receipt.status == "250" and receipt.detail == "refused: oncall@example.org (550)"
    assert server.handler.envelopes == [("alerts@example.com", ["ops@example.com"])]


def test_451_is_temporary(server: Server) -> None:
    server.handler.data_reply = "451 4.3.0 try again later"
    with pytest.raises(TemporaryError) as caught:
        EmailSender(channel(server.port), SITE).send(message())
    assert caught.value.status == "451"


def test_greylisted_recipients_are_temporary(server: Server) -> None:
    server.handler.refuse = dict.fromkeys(["ops@example.com", "oncall@example.org"], "451 4.7.1 greylisted")
    with pytest.raises(TemporaryError) as caught:
        EmailSender(channel(server.port), SITE).send(message())
    assert caught.value.status == "451"


def test_sender_refused_is_permanent_and_never_shows_the_password(server: Server) -> None:
    server.handler.sender_reply = f"553 5.7.1 sender rejected (you sent {PASSWORD})"
    config = channel(server.port, password=PASSWORD)
    with pytest.raises(PermanentError) as caught:
        EmailSender(config, SITE).send(message())
    assert caught.value.status == "553"
    assert PASSWORD not in str(caught.value) and "[redacted]" in caught.value.reason


def test_connection_refused_is_temporary() -> None:
    with pytest.raises(TemporaryError) as caught:
        EmailSender(channel(free_port()), SITE).send(message())
    assert "127.0.0.1" in caught.value.reason


def test_a_slow_server_is_cut_off_at_the_timeout(server: Server) -> None:
    server.handler.delay = 3.0
    start = time.monotonic()
    with pytest.raises(TemporaryError):
        EmailSender(channel(server.port, timeout="500ms"), SITE).send(message())
    assert time.monotonic() - start < 2.0


def test_a_dripping_server_is_cut_off_at_the_timeout() -> None:
    """Each line arrives within the socket timeout, so only the whole-send deadline can end this."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            for _ in range(100):  # 10s at most, should the deadline not work
                if stop.is_set():
                    return
                try:
                    conn.sendall(b"220-still greeting\r\n")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(TemporaryError, match="did not finish within 1s"):
            EmailSender(channel(listener.getsockname()[1], timeout="1s"), SITE).send(message())
        assert time.monotonic() - start < 2.0
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_starttls_required_but_not_offered_is_permanent(server: Server) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        EmailSender(channel(server.port, starttls=True), SITE).send(message())


# -- TLS: a throwaway self-signed certificate for 127.0.0.1 -------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509", reason="TLS tests need the cryptography package")
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = auth_data.login == b"genstatus" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    srv = start_server(tls_context=server_context(certificate), require_starttls=True, authenticator=authenticator,
                       auth_required=True, auth_require_tls=True)
    yield srv
    srv.controller.stop()


def test_login_over_starttls(tls_server: Server, certificate: tuple[Path, Path]) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    config = channel(tls_server.port, starttls=True, username="genstatus", password=PASSWORD)
    receipt = EmailSender(config, SITE, tls_context=trusted).send(message())
    assert receipt.status == "250"
    assert len(tls_server.handler.messages) == 1


def test_wrong_password_is_permanent_and_not_shown(tls_server: Server, certificate: tuple[Path, Path]) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    config = channel(tls_server.port, starttls=True, username="genstatus", password="wrong-password-123")
    with pytest.raises(PermanentError) as caught:
        EmailSender(config, SITE, tls_context=trusted).send(message())
    assert caught.value.status == "535"
    assert "wrong-password-123" not in str(caught.value)
    assert tls_server.handler.messages == []


def test_untrusted_certificate_is_permanent(tls_server: Server) -> None:
    config = channel(tls_server.port, starttls=True, username="genstatus", password=PASSWORD)
    with pytest.raises(PermanentError, match="certificate"):
        EmailSender(config, SITE).send(message())  # the system's CAs do not know the throwaway certificate


def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    srv = start_server(ssl_context=server_context(certificate))
    try:
        trusted = ssl.create_default_context(cafile=str(certificate[0]))
        EmailSender(channel(srv.port, ssl=True), SITE, tls_context=trusted).send(message())
        assert len(srv.handler.messages) == 1
    finally:
        srv.controller.stop()
