"""The ``subscriptions:`` config section, and the outbox vocabulary both sides of subscriptions share.

Visitors subscribe on the public site (``web.subscribe``), which writes a ``Subscriber`` row and an
``alert_outbox`` row asking for its confirmation; the alert dispatcher (``monitor.alerts.subscribers``)
sends what the outbox asks for.  The web side may not import ``monitor.alerts``, so the event names
and outbox keys both sides read are defined here, beside the settings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from monitor.config.alerts import ChannelId
from monitor.config.durations import Duration

#: the audience of outbox rows only subscribers get (a confirmation, maintenance notices); alert routes never see them
SUBSCRIBER_AUDIENCE = "subscriber"
#: "please confirm your subscription": sent to one unconfirmed subscriber
CONFIRM_EVENT = "subscribe_confirm"
#: incident events a confirmed subscriber hears about (public incidents only); reminders and SLO alerts are the operator's
INCIDENT_EVENTS = frozenset({"open", "reopen", "escalate", "deescalate", "update", "identified", "monitoring",
                             "resolve", "postmortem"})
MAINTENANCE_SCHEDULED = "maintenance_scheduled"
MAINTENANCE_STARTED = "maintenance_started"
MAINTENANCE_UPDATE = "maintenance_update"
MAINTENANCE_COMPLETED = "maintenance_completed"
MAINTENANCE_EVENTS = frozenset({MAINTENANCE_SCHEDULED, MAINTENANCE_STARTED, MAINTENANCE_UPDATE, MAINTENANCE_COMPLETED})

# ``dedupe_key`` of the outbox rows: what the row is about, which the outbox has no column for
_CONFIRM = "confirm"
_MAINTENANCE = "maintenance"
_ADMIN = "admin"  # an incident event written by a person on the admin side: its body is public text


def confirm_key(subscriber_id: int, at: datetime) -> str:
    """One confirmation request of a subscriber (the second makes two requests in one second one row)."""
    return f"{_CONFIRM}:{subscriber_id}:{int(at.timestamp())}"


def confirm_key_prefix(subscriber_id: int) -> str:
    return f"{_CONFIRM}:{subscriber_id}:"


def maintenance_key(maintenance_id: int, event: str, unique: str | None = None) -> str:
    """Scheduled, started and completed exist once per window; updates carry a ``unique`` part."""
    return f"{_MAINTENANCE}:{maintenance_id}:{event}" + (f":{unique}" if unique else "")


def admin_incident_key(incident_id: int, unique: str) -> str:
    return f"{_ADMIN}:{incident_id}:{unique}"


def is_admin_key(dedupe_key: str | None) -> bool:
    return bool(dedupe_key) and str(dedupe_key).startswith(f"{_ADMIN}:")


def subject_of(dedupe_key: str | None, kind: str) -> int | None:
    """The subscriber id of a ``confirm`` key, the window id of a ``maintenance`` key; None otherwise."""
    prefix, _, rest = (dedupe_key or "").partition(":")
    number = rest.split(":", 1)[0]
    return int(number) if prefix == kind and number.isdigit() else None


def confirm_subject(dedupe_key: str | None) -> int | None:
    return subject_of(dedupe_key, _CONFIRM)


def maintenance_subject(dedupe_key: str | None) -> int | None:
    return subject_of(dedupe_key, _MAINTENANCE)


class SubscriptionsConfig(BaseModel):
    """Visitors may subscribe to public incidents and maintenance by email (through an alert channel of
    type ``email``) or webhook; every address is confirmed before anything else is sent to it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = False
    email_channel: ChannelId | None = None  # the alert channel (type email) whose SMTP server sends subscriber mail
    webhooks: bool = False  # offer webhook subscriptions too
    allow_private_webhooks: bool = False  # let subscriber webhooks reach private addresses (tests, intranets)
    webhook_timeout: Duration = timedelta(seconds=10)
    resend_confirmation_after: Duration = timedelta(minutes=10)  # at most one confirmation message per address this often
    confirm_within: Duration = timedelta(days=7)  # an unconfirmed address is forgotten after this
    per_ip_per_hour: int = Field(10, ge=1, le=100_000)  # subscribe requests one address may make in an hour
    drop_webhook_after: int = Field(3, ge=1, le=1000)  # a webhook answering 404/410 this many times is unsubscribed

    @model_validator(mode="after")
    def _usable(self) -> SubscriptionsConfig:
        if self.enabled and self.email_channel is None and not self.webhooks:
            raise ValueError("enabled, but with neither an email_channel nor webhooks: visitors could not subscribe")
        return self


def _email_channel_is_email(value: SubscriptionsConfig, info: ValidationInfo) -> SubscriptionsConfig:
    """``email_channel`` must name an alert channel of type email (checked against the ``alerts`` already read)."""
    alerts: Any = info.data.get("alerts")
    if value.email_channel is None or alerts is None:  # no channel, or alerts is invalid and reported already
        return value
    channel = next((c for c in alerts.channels if c.id == value.email_channel), None)
    if channel is None:
        raise ValueError(f"email_channel {value.email_channel!r} is not defined under alerts.channels")
    if channel.type != "email":
        raise ValueError(f"email_channel {value.email_channel!r} is a {channel.type} channel: "
                         f"subscriber mail needs an alert channel of type email")
    return value


#: the type of ``Config.subscriptions``: declared after ``site`` and ``alerts``, which its check reads
Subscriptions = Annotated[SubscriptionsConfig, AfterValidator(_email_channel_is_email)]


def unavailable_reason(site_url: str | None, subscriptions: SubscriptionsConfig) -> str | None:
    """Why visitors cannot subscribe now, or None when they can."""
    if not subscriptions.enabled:
        return "subscriptions are not enabled (subscriptions.enabled)"
    if not site_url:
        return "site.url is not set: confirmation and unsubscribe links need the page's absolute URL"
    return None


def subscription_warnings(config: Any) -> list[str]:
    """What ``check-config`` should warn about (``config`` is a ``Config``)."""
    subscriptions: SubscriptionsConfig = config.subscriptions
    if subscriptions.enabled and not config.site.url:
        return ["subscriptions.enabled is true but site.url is not set: the subscribe page says subscriptions are "
                "unavailable until it is (links in subscriber messages need an absolute URL)"]
    return []
