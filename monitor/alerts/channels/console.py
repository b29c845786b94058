"""The log as a channel: every alert's text at WARNING (what ``genstatus demo`` routes everything to)."""

from __future__ import annotations

import logging

from monitor.alerts.channels.base import Receipt
from monitor.alerts.message import Message
from monitor.config import SiteConfig
from monitor.config.alerts import ConsoleChannel

log = logging.getLogger("genstatus.alerts.console")


class ConsoleSender:
    timeout = 1.0  # nothing to wait for

    def __init__(self, config: ConsoleChannel, site: SiteConfig) -> None:
        self.channel_id = config.id

    def send(self, message: Message) -> Receipt:
        log.warning("%s %s", message.mark, message.text().rstrip("\n"))
        return Receipt("logged")
