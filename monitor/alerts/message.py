"""What an alert says, rendered once and shared by every channel.

A ``Message`` holds the facts (service, kind, impact, regions, since when, outcomes, one example
error, the incident link, a thumbnail for quality incidents); each channel lays them out in its
own format from these fields.  ``headline`` is what a phone lock screen shows: what and how bad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: event -> the word the headline uses (outbox events are the detector's actions)
EVENT_WORDS = {
    "open": "opened",
    "reopen": "reopened",
    "escalate": "escalated",
    "deescalate": "de-escalated",
    "update": "updated",
    "monitoring": "recovering",
    "resolve": "resolved",
    "reminder": "still open",
    "slo_burn": "SLO burn",
    "test": "test",
}
#: impact or state -> a marker channels may show beside the headline
MARKS = {"critical": "🔴", "major": "🔴", "minor": "🟠", "none": "🔵", "resolved": "✅", "test": "🧪"}


@dataclass(frozen=True)
class Message:
    """One alert for one channel; ``delivery_key`` is its idempotency key (the same on every retry)."""

    delivery_key: str
    event: str  # a key of EVENT_WORDS
    title: str  # "DALL·E 3: major outage"
    body: str  # the facts, plain text, a few lines
    impact: str = "minor"
    audience: str = "public"
    incident_id: int | None = None
    service: str | None = None
    service_name: str | None = None
    group: str | None = None
    kind: str | None = None
    regions: tuple[str, ...] = ()
    started_at: datetime | None = None  # UTC
    since: str | None = None  # started_at in the site timezone and UTC, for people
    outcomes: tuple[tuple[str, int], ...] = ()
    example: str | None = None  # one error detail, already sanitised
    url: str | None = None  # the incident page, when site.url is set
    image: bytes | None = None  # a failing output's thumbnail (quality incidents)
    image_type: str = "image/png"
    image_public_url: str | None = None  # where a channel that cannot attach may link the image
    test: bool = False
    thread: dict[str, str] = field(default_factory=dict)  # what earlier messages of this incident left (Slack ts, Message-ID)

    @property
    def resolved(self) -> bool:
        return self.event == "resolve"

    @property
    def mark(self) -> str:
        if self.test:
            return MARKS["test"]
        return MARKS["resolved"] if self.resolved else MARKS.get(self.impact, "🟠")

    @property
    def headline(self) -> str:
        """The first line: what, and how bad ("[TEST] " first for a test)."""
        word = EVENT_WORDS.get(self.event, self.event)
        if self.event.startswith("slo_burn:"):  # the SLO check writes slo_burn:<tier>
            word = f"SLO burn ({self.event.partition(':')[2]} window)"
        prefix = "[TEST] " if self.test else ""
        return f"{prefix}{self.title} — {word}"

    def text(self) -> str:
        """The whole message as plain text (console, email's text part, Apprise)."""
        lines = [self.headline, "", self.body]
        if self.url:
            lines += ["", self.url]
        return "\n".join(lines).rstrip() + "\n"
