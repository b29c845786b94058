"""The ``alerts:`` config section: channels (where alerts go) and routes (which events go where)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.config.durations import Duration
from monitor.enums import Audience, Impact, IncidentKind

ChannelId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DEFAULT_SEND_TIMEOUT = timedelta(seconds=10)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class SMTPConfig(_Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False  # implicit TLS (port 465)
    username: str | None = None
    password: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)


class SlackChannel(_Strict):
    """An incoming webhook (``webhook_url``), or a bot token and channel (``token``, ``channel``):
    with a token, updates thread under the first message and the first message is edited when resolved."""

    id: ChannelId
    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api"
    allow_private_network: bool = False  # a Slack-compatible receiver on a private network (Mattermost, a relay)
    timeout: Duration = DEFAULT_SEND_TIMEOUT

    @model_validator(mode="after")
    def _one_way(self) -> SlackChannel:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("give either webhook_url, or token and channel")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel to post to")
        return self


class EmailChannel(_Strict):
    id: ChannelId
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str | None = Field(None, alias="from")
    smtp: SMTPConfig


class WebhookChannel(_Strict):
    id: ChannelId
    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, str] = {}
    secret: SecretStr | None = None  # signs each body (X-Genstatus-Signature)
    allow_private_network: bool = False
    timeout: Duration = DEFAULT_SEND_TIMEOUT


class PagerDutyChannel(_Strict):
    id: ChannelId
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    allow_private_network: bool = False  # an Events-API-compatible receiver on a private network
    timeout: Duration = DEFAULT_SEND_TIMEOUT


class AppriseChannel(_Strict):
    id: ChannelId
    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)
    timeout: Duration = DEFAULT_SEND_TIMEOUT


class ConsoleChannel(_Strict):
    """Prints each alert to the log (what ``genstatus demo`` routes everything to)."""

    id: ChannelId
    type: Literal["console"]


Channel = Annotated[SlackChannel | EmailChannel | WebhookChannel | PagerDutyChannel | AppriseChannel | ConsoleChannel,
                    Field(discriminator="type")]


class QuietHours(_Strict):
    """A daily window (site timezone) when the route holds back everything but critical alerts until it ends."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # "22:00"
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # "07:00" (the next morning when before start)


class RouteConfig(_Strict):
    channels: list[str] = Field(min_length=1)
    min_impact: Impact = Impact.MINOR
    services: list[str] | None = None
    groups: list[str] | None = None
    kinds: list[IncidentKind] | None = None
    audience: list[Audience] | None = None  # None: public events, and operator events when the route has no filter
    resolved: bool = True  # also send "resolved"
    quiet_hours: QuietHours | None = None


class AlertsConfig(_Strict):
    channels: list[Channel] = []
    routes: list[RouteConfig] = []
    give_up_after: Duration = timedelta(hours=24)  # an undelivered alert expires (logged, counted) after this
    remind_every: Duration | None = None  # while an incident stays open, remind at this interval (default: never)
