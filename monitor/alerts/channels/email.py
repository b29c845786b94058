"""Email over SMTP (standard library only): a plain-text and an HTML part, threaded per incident.

The ``Message-ID`` is derived from the delivery key, so a resend after a crash carries the same id
(and receivers that deduplicate on it show one email); follow-ups of an incident set
``In-Reply-To``/``References`` to the first email's id, so mail clients thread opened -> resolved.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from html import escape
from urllib.parse import urlsplit

from monitor.alerts.channels.base import PermanentError, Receipt, TemporaryError
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import EmailChannel

#: impact or state -> the header line's colour in the HTML part
COLOURS = {"critical": "#b3261e", "major": "#d93025", "minor": "#e37400", "none": "#1a73e8",
           "resolved": "#188038", "test": "#7b1fa2"}
_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class EmailSender:
    def __init__(self, config: EmailChannel, site: SiteConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.channel_id = config.id
        self.timeout = config.smtp.timeout.total_seconds()
        self.config = config
        self.site = site
        self.tls_context = tls_context  # None: the system's trusted CAs (tests pass their own)
        sender_addr = parseaddr(config.sender)[1] if config.sender else ""
        self.domain = _domain(sender_addr, site)
        self.sender = config.sender or str(Address(site.title or "genstatus", "genstatus", self.domain))
        self.envelope_from = sender_addr or f"genstatus@{self.domain}"

    def message_id(self, message: Message) -> str:
        key = "".join(c if c in _SAFE_ID else "".join(f"={b:02X}" for b in c.encode()) for c in message.delivery_key)
        return f"<{key}.genstatus@{self.domain}>"

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        own = self.headers(mail, message, subject=message.headline, to=", ".join(self.config.to))
        mail.set_content(message.text())
        cid = f"thumb.{own[1:-1]}" if message.image else None
        mail.add_alternative(render_html(message, self.site, image_cid=cid), subtype="html")
        if message.image and cid:  # the html part becomes multipart/related (html, image)
            *_, html_part = mail.iter_parts()
            maintype, _, subtype = message.image_type.partition("/")
            html_part.add_related(message.image, maintype, subtype or "png", cid=f"<{cid}>",
                                  disposition="inline", filename=f"thumbnail.{subtype or 'png'}")
        return mail

    def _context(self) -> ssl.SSLContext:
        """The TLS context, made once (loading the system's CAs costs ~40 ms of CPU per send otherwise)."""
        if self.tls_context is None:
            self.tls_context = ssl.create_default_context()
        return self.tls_context

    def headers(self, mail: EmailMessage, message: Message, *, subject: str, to: str) -> str:
        """Subject, addresses, date, Message-ID and the thread's references; returns the Message-ID."""
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = to
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = own = self.message_id(message)
        first = message.thread.get("message_id")
        if first and first != own:
            mail["In-Reply-To"] = first
            mail["References"] = first
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
        return own

    def send(self, message: Message) -> Receipt:
        mail = self.compose(message)
        smtp_cfg = self.config.smtp
        context = self._context() if smtp_cfg.ssl or smtp_cfg.starttls else None
        smtp = (smtplib.SMTP_SSL(context=context, timeout=self.timeout) if smtp_cfg.ssl
                else smtplib.SMTP(timeout=self.timeout))
        # connect() separately, so the watchdog can also hang up on a greeting that never ends; smtplib
        # records the name TLS checks the certificate against only when the constructor connects
        smtp._host = smtp_cfg.host  # type: ignore[attr-defined]
        # socket timeouts bound each read, not the conversation: hang up when the whole send runs over
        timed_out = threading.Event()
        watchdog = threading.Timer(self.timeout, _hang_up, args=(smtp, timed_out))
        watchdog.daemon = True
        watchdog.start()
        try:
            smtp.connect(smtp_cfg.host, smtp_cfg.port)
            if smtp_cfg.starttls and not smtp_cfg.ssl:
                smtp.starttls(context=context)
            if smtp_cfg.username:
                password = smtp_cfg.password.get_secret_value() if smtp_cfg.password else ""
                smtp.login(smtp_cfg.username, password)
            refused = smtp.send_message(mail, from_addr=self.envelope_from, to_addrs=self.config.to)
        except (smtplib.SMTPException, OSError) as exc:
            if timed_out.is_set():
                raise TemporaryError(f"the SMTP server did not finish within {self.timeout:g}s") from None
            raise self._error(exc) from None
        finally:
            watchdog.cancel()
            _quit(smtp)
        # some recipients refused, the others accepted: a retry would send them a duplicate, so report it here
        detail = "refused: " + ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in refused.items()) if refused else ""
        return Receipt("250", detail=detail, thread={"message_id": str(mail["Message-ID"])})

    def _error(self, exc: Exception) -> PermanentError | TemporaryError:
        """4xx and network trouble: try later; 5xx, refused credentials or recipients: stop."""
        where = f"{self.config.smtp.host}:{self.config.smtp.port}"
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            text = ", ".join(f"{rcpt} ({code} {_text(reply)})" for rcpt, (code, reply) in exc.recipients.items())
            kind = PermanentError if all(c >= 500 for c in codes) else TemporaryError
            return kind(self._scrub(f"{where} refused every recipient: {text}"), status=str(max(codes, default=0)))
        if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, auth, data, connect: by reply code
            what = {smtplib.SMTPAuthenticationError: "refused the login",
                    smtplib.SMTPSenderRefused: "refused the sender"}.get(type(exc), "answered")
            kind = TemporaryError if 400 <= exc.smtp_code < 500 else PermanentError
            reason = f"{where} {what}: {exc.smtp_code} {_text(exc.smtp_error)}"
            return kind(self._scrub(reason), status=str(exc.smtp_code))
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentError(self._scrub(f"{where}: {exc}"))  # e.g. no STARTTLS, no AUTH: a config matter
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(f"{where}: TLS certificate not trusted ({exc.verify_message})")
        return TemporaryError(self._scrub(f"{where}: {type(exc).__name__}: {exc}"))

    def _scrub(self, text: str) -> str:
        password = self.config.smtp.password
        return text.replace(password.get_secret_value(), "[redacted]") if password and password.get_secret_value() else text


def render_html(message: Message, site: SiteConfig, *, image_cid: str | None = None) -> str:
    """The HTML part: inline CSS only (mail clients drop style sheets), every value escaped."""
    colour = COLOURS.get("test" if message.test else "resolved" if message.resolved else message.impact, COLOURS["minor"])
    facts = [
        ("Service", message.service_name or message.service),
        ("Group", message.group),
        ("Impact", None if message.resolved else message.impact),
        ("Kind", message.kind),
        ("Regions", ", ".join(message.regions) or None),
        ("Since", message.since),
        ("Outcomes", ", ".join(f"{name} ({count})" for name, count in message.outcomes) or None),
        ("Example", message.example),
    ]
    cell = "padding:4px 12px 4px 0;vertical-align:top;"
    rows = "".join(
        f'<tr><th style="{cell}text-align:left;color:#5f6368;font-weight:normal;white-space:nowrap">{escape(name)}</th>'
        f'<td style="{cell}{"font-family:monospace;" if name == "Example" else ""}">{escape(value)}</td></tr>'
        for name, value in facts if value)
    parts = [
        f'<div style="border-left:6px solid {colour};padding:8px 12px;font-size:18px;font-weight:bold;color:{colour}">'
        f"{escape(message.mark)} {escape(message.headline)}</div>",
        f'<p style="margin:12px 0">{escape(message.body).replace(chr(10), "<br>")}</p>' if message.body else "",
        f'<table style="border-collapse:collapse;font-size:14px">{rows}</table>' if rows else "",
        f'<p><img src="cid:{escape(image_cid)}" alt="failing output" style="max-width:320px;border:1px solid #dadce0"></p>'
        if image_cid else "",
    ]
    if message.url and urlsplit(message.url).scheme in ("http", "https"):
        parts.append(f'<p><a href="{escape(message.url)}" style="color:#1a73e8">View the incident</a></p>')
    footer = escape(f"Sent by genstatus for {site.title}")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{escape(message.headline)}</title></head>"
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#202124;margin:0;padding:16px">'
        + "".join(parts)
        + f'<p style="margin-top:24px;font-size:12px;color:#5f6368">{footer}</p></body></html>\n'
    )


def _domain(sender_addr: str, site: SiteConfig) -> str:
    """For Message-IDs and the default sender: the sender's domain, else the status page's host, else this host."""
    if "@" in sender_addr:
        return sender_addr.rsplit("@", 1)[1]
    if site.url and urlsplit(site.url).hostname:
        return str(urlsplit(site.url).hostname)
    return socket.getfqdn() or "localhost"


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _hang_up(smtp: smtplib.SMTP, timed_out: threading.Event) -> None:
    timed_out.set()
    if smtp.sock is not None:
        try:
            socket.socket.shutdown(smtp.sock, socket.SHUT_RDWR)  # the raw socket, also under TLS: ends a pending read
        except OSError:
            pass


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        if smtp.sock is not None:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()
