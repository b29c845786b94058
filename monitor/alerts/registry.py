"""Channel type -> sender class: adding a channel is its module under ``channels/`` and one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.alerts.channels.base import Sender
from monitor.config import Config, SiteConfig


def _senders() -> dict[str, Callable[[Any, SiteConfig], Sender]]:
    from monitor.alerts.channels.apprise import AppriseSender
    from monitor.alerts.channels.console import ConsoleSender
    from monitor.alerts.channels.email import EmailSender
    from monitor.alerts.channels.pagerduty import PagerDutySender
    from monitor.alerts.channels.slack import SlackSender
    from monitor.alerts.channels.webhook import WebhookSender

    return {
        "slack": SlackSender,
        "email": EmailSender,
        "webhook": WebhookSender,
        "pagerduty": PagerDutySender,
        "apprise": AppriseSender,
        "console": ConsoleSender,
    }


def build_senders(config: Config) -> dict[str, Sender]:
    """One sender per configured channel, by channel id."""
    kinds = _senders()
    return {channel.id: kinds[channel.type](channel, config.site) for channel in config.alerts.channels}
