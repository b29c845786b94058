"""The long tail of channels (Discord, Teams, Telegram, ntfy, ...) through the Apprise library, by URL.

Apprise is optional (``pip install 'genstatus[apprise]'``) and imported only when a message is sent.
Its URLs carry tokens, so none of them ever appears in an error; Apprise itself logs why a URL failed.
"""

from __future__ import annotations

import inspect
from types import ModuleType

from monitor.alerts.channels.base import PermanentError, Receipt, TemporaryError
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import AppriseChannel

#: impact or state -> Apprise's notification type (the colour or icon most targets show)
NOTIFY_TYPES = {"critical": "failure", "major": "failure", "minor": "warning", "none": "info"}


class AppriseSender:
    def __init__(self, config: AppriseChannel, site: SiteConfig) -> None:
        self.channel_id = config.id
        self.timeout = config.timeout.total_seconds()
        self.urls = [url.get_secret_value() for url in config.urls]

    def send(self, message: Message) -> Receipt:
        apprise = _load()
        notifier = apprise.Apprise()
        for number, url in enumerate(self.urls, 1):
            service = apprise.Apprise.instantiate(url)
            if service is None:
                raise PermanentError(f"Apprise URL #{number} of channel {self.channel_id} is not valid or its plugin is unavailable")
            # each plugin's own socket timeouts (4s by default), never longer than the channel's
            service.socket_connect_timeout = min(service.socket_connect_timeout, self.timeout)
            service.socket_read_timeout = min(service.socket_read_timeout, self.timeout)
            notifier.add(service)
        state = "info" if message.test else "success" if message.resolved else NOTIFY_TYPES.get(message.impact, "warning")
        kwargs = {"timeout": self.timeout} if "timeout" in inspect.signature(notifier.notify).parameters else {}
        result = notifier.notify(
            title=message.headline,
            body=message.text().removeprefix(message.headline).lstrip("\n"),  # targets without a title get it prepended
            body_format=apprise.NotifyFormat.TEXT,
            notify_type=apprise.NotifyType(state),
            **kwargs,
        )
        if not result:
            if getattr(getattr(result, "status", None), "name", "") == "TIMEOUT":
                raise TemporaryError(f"Apprise did not finish within {self.timeout:g}s")
            raise TemporaryError("one or more Apprise URLs failed; see the log")
        return Receipt("sent", detail=f"{len(self.urls)} URL(s)")


def _load() -> ModuleType:
    try:
        import apprise
    except ImportError:
        raise PermanentError("the apprise channel needs: pip install 'genstatus[apprise]'") from None
    return apprise
