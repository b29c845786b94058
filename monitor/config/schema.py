"""The config file's shape: pydantic models with the documented defaults (docs/contracts.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.config.alerts import AlertsConfig
from monitor.config.detection import DetectionSettings
from monitor.config.durations import Duration, format_duration
from monitor.config.retention import RetentionSettings
from monitor.config.subscriptions import Subscriptions, SubscriptionsConfig

DEFAULT_CONFIG_NAME = "genstatus.yaml"
SEED_LIMIT = 2**31 - 1  # the largest seed every provider accepts
DEFAULT_DATABASE = "sqlite:///genstatus.db"

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Strict(BaseModel):
    # ``.inf`` and ``.nan`` are YAML floats: an infinite budget or tolerance is a typo, and NaN fails no comparison
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SiteConfig(Strict):
    title: str = "Image Generation Status"
    url: str | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value


class CanaryConfig(Strict):
    id: Slug
    prompt: str = Field(min_length=1)
    size: str = "1024x1024"
    seed: int | Literal["random"] | None = None
    negative_prompt: str | None = None
    #: text the image must show legibly (checked by OCR; needs the ``ocr`` extra)
    expect_text: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 <= value <= SEED_LIMIT:
            raise ValueError(f"seed must be between 0 and {SEED_LIMIT} (what every provider accepts), or random")
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        if value != "auto" and not re.fullmatch(r"[1-9]\d{1,4}x[1-9]\d{1,4}", value):
            raise ValueError(f"invalid size {value!r} (use WIDTHxHEIGHT, e.g. 1024x1024, or auto)")
        return value

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """(width, height) requested, or None for ``auto``."""
        if self.size == "auto":
            return None
        width, height = self.size.split("x")
        return int(width), int(height)


class ClipConfig(Strict):
    """The optional CLIP plug-in: prompt-image agreement with a local weights file (never downloaded)."""

    weights: Path
    model: str = "ViT-B-32"
    min_similarity: float = Field(0.2, ge=-1, le=1)  # cosine similarity below this: the image ignores the prompt


class QualityConfig(Strict):
    """Thresholds of quality scoring; the defaults are documented in README "Image quality" and docs/contracts.md."""

    drift_bits: int = Field(10, ge=1, le=64)  # pHash/dHash distance to every reference above this: drift
    blur_ratio: float = Field(0.5, gt=0, le=1)  # detail below this share of the references' is blur
    blur_ratio_any_seed: float = Field(0.15, gt=0, le=1)  # the same when outputs are new pictures (no fixed seed)
    profile_tolerance: float = Field(4.0, gt=0)  # robust deviations outside the service's own normal
    stuck_bits: int = Field(2, ge=0, le=32)  # outputs this close for different seeds are one cached image
    noise_check: bool = True  # off for canaries that ask for noise-like content
    text_confidence: float = Field(0.8, ge=0, le=1)  # OCR confidence the expected text must reach
    text_similarity: float = Field(0.8, ge=0, le=1)  # fuzzy match of recognised vs expected text
    keep_failing_images: Duration | None = None  # keep full failing images this long (off: thumbnails only)
    clip: ClipConfig | None = None


class SLOConfig(Strict):
    availability: float = Field(99.5, gt=0, le=100)
    latency_p95: Duration | None = None
    min_quality: float | None = Field(None, ge=0, le=1)


class ServiceConfig(Strict):
    id: Slug
    name: str | None = None
    group: str = ""
    provider: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    canaries: list[str] = Field(min_length=1)
    interval: Duration = timedelta(minutes=10)
    health_interval: Duration | None = None
    timeout: Duration = timedelta(seconds=180)
    latency_threshold: Duration | None = None
    cost_per_image: float = Field(0.0, ge=0)
    monthly_budget: float | None = Field(None, gt=0)
    concurrency: int = Field(1, ge=1, le=64)
    slo: SLOConfig = SLOConfig()
    quality: QualityConfig | None = None  # replaces the top-level ``quality`` for this service
    allow_private_network: bool = False
    #: Origins (``https://host[:port]``) other than ``base_url``'s that the provider's answers may send
    #: us to with the service's credentials (polling, result and cancel URLs).  By default a URL an
    #: answer names on any other origin is refused (``bad_output``) and never requested, so the key
    #: cannot leak to a host the operator did not choose; these origins must also resolve to public
    #: addresses unless ``allow_private_network`` is set.
    allowed_origins: list[str] = []
    max_image_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=2**30)  # more than 1 GB would be no limit at all
    headers: dict[str, str] = {}
    options: dict[str, Any] = {}

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        """Refused here rather than at every probe of ``run`` (a bad URL made each one a ``probe_error``)."""
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number or out of range
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc}): give e.g. https://api.example.com/v1") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError("not an http(s) URL with a host: give e.g. https://api.example.com/v1")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            try:
                parts = urlsplit(origin)
                parts.port  # noqa: B018 - raises on a port that is not a number or out of range
            except ValueError:
                parts = urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                    or parts.query or parts.fragment or parts.username or parts.password:
                raise ValueError(f"{origin!r} is not an origin: give scheme://host[:port], e.g. https://api.eu.example.com")
        return value

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError(f"must be at least 1s, got {format_duration(value)}")
        return value

    @field_validator("health_interval")
    @classmethod
    def _health_interval(cls, value: timedelta | None) -> timedelta | None:
        """0 turns health checks off; anything else under a second would check the provider in a busy loop."""
        if value and value.total_seconds() < 1:
            raise ValueError(f"must be at least 1s (or 0s for none), got {format_duration(value)}")
        return value

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def slow_threshold(self) -> timedelta | None:
        """Total latency above this makes an otherwise good run ``slow``."""
        return self.latency_threshold or self.slo.latency_p95

    def secret_values(self) -> list[str]:
        """Every value that must never reach the database, logs, pages or alerts."""
        values = [self.api_key.get_secret_value()] if self.api_key else []
        values += [v.split()[-1] for v in self.headers.values() if v.strip()]
        return values


class WeeklyReportConfig(Strict):
    at: str = "mon 09:00"  # a weekday and a time in the site timezone
    channels: list[str] = []  # alert channel ids the report is sent through (email: the report with its charts)
    public: bool = True  # /reports and /reports/<week> on the status site; false: on the admin side only

    @field_validator("at")
    @classmethod
    def _weekday_and_time(cls, value: str) -> str:
        if not re.fullmatch(r"(?i)(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"invalid time {value!r} (use a weekday and a 24-hour time, e.g. mon 09:00)")
        return value


class ReportsConfig(Strict):
    weekly: WeeklyReportConfig | None = None


class MaintenanceWindow(Strict):
    """Planned work: public incidents and alerts are suppressed and services show ``under_maintenance``."""

    title: str = "Scheduled maintenance"
    services: list[str] = []  # empty = every service
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+05:00 is in year 0 in UTC
            raise ValueError(f"{value.isoformat()} is out of range in UTC") from None

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _port_of(netloc: str) -> int | None:
    """The port written in a URL's ``[user[:password]@]host[:port]`` (``ValueError`` when not a number)."""
    hostport = netloc.rpartition("@")[2]
    if hostport.endswith("]"):  # [IPv6] without a port
        return None
    _, colon, text = hostport.rpartition(":")
    if not colon or not text:
        return None
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


class Config(Strict):
    site: SiteConfig = SiteConfig()
    database: str = DEFAULT_DATABASE
    region: str = "default"
    canaries: list[CanaryConfig] = []
    services: list[ServiceConfig] = []
    detection: DetectionSettings = DetectionSettings()
    maintenance: list[MaintenanceWindow] = []
    alerts: AlertsConfig = AlertsConfig()
    reports: ReportsConfig = ReportsConfig()
    subscriptions: Subscriptions = SubscriptionsConfig()  # after site and alerts: its check reads them
    quality: QualityConfig = QualityConfig()
    retention: RetentionSettings = RetentionSettings()  # what old data is deleted (monitor.store.retention)

    def quality_of(self, service: ServiceConfig) -> QualityConfig:
        return service.quality or self.quality

    def service(self, service_id: str) -> ServiceConfig:
        for service in self.services:
            if service.id == service_id:
                return service
        raise KeyError(service_id)

    def canary(self, canary_id: str) -> CanaryConfig:
        for canary in self.canaries:
            if canary.id == canary_id:
                return canary
        raise KeyError(canary_id)

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """A URL the store can open: SQLite or PostgreSQL, with a port that exists."""
        # urllib, not SQLAlchemy's make_url: importing SQLAlchemy costs a one-shot `check-config` 0.2 s
        scheme, sep, _ = value.partition("://")
        try:
            if not (sep and scheme) or not scheme.replace("+", "").replace("_", "").isalnum():
                raise ValueError
            port = _port_of(urlsplit(value).netloc)
        except ValueError:
            raise ValueError(f"not a database URL: {value.split('@')[-1]!r} (e.g. sqlite:///genstatus.db or "
                             f"postgresql://user:password@host:5432/genstatus)") from None
        backend = scheme.split("+")[0].lower()
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not a TCP port (1-65535)")
        return value

    def canaries_of(self, service: ServiceConfig) -> list[CanaryConfig]:
        return [self.canary(cid) for cid in service.canaries]
