"""Configuration (DESIGN.md §4): pydantic models, YAML loading with line numbers, ``${VAR}``.

Every error names the file, the line and the key path, e.g.
``genstatus.yaml:14 services[0].interval: invalid duration '5 minutes'``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.detect import DetectionSettings
from monitor.durations import Duration, format_duration
from monitor.enums import Impact

DEFAULT_CONFIG_NAME = "genstatus.yaml"
DEFAULT_DATABASE = "sqlite:///genstatus.db"

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    """Thresholds of quality scoring (DESIGN §8); the defaults are documented in README "Quality checks"."""

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
    max_image_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    headers: dict[str, str] = {}
    options: dict[str, Any] = {}

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError(f"must be at least 1s, got {format_duration(value)}")
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


class SMTPConfig(Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)


class SlackChannel(Strict):
    id: Slug
    type: Literal["slack"]
    webhook_url: SecretStr


class EmailChannel(Strict):
    id: Slug
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str | None = Field(None, alias="from")
    smtp: SMTPConfig


class WebhookChannel(Strict):
    id: Slug
    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, str] = {}
    secret: SecretStr | None = None


class AppriseChannel(Strict):
    id: Slug
    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)


Channel = Annotated[SlackChannel | EmailChannel | WebhookChannel | AppriseChannel, Field(discriminator="type")]


class RouteConfig(Strict):
    channels: list[str] = Field(min_length=1)
    min_impact: Impact = Impact.MINOR
    services: list[str] | None = None
    groups: list[str] | None = None


class AlertsConfig(Strict):
    channels: list[Channel] = []
    routes: list[RouteConfig] = []


class WeeklyReportConfig(Strict):
    at: str = "mon 09:00"
    channels: list[str] = []


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
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> "MaintenanceWindow":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


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
    quality: QualityConfig = QualityConfig()

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

    def canaries_of(self, service: ServiceConfig) -> list[CanaryConfig]:
        return [self.canary(cid) for cid in service.canaries]


# --------------------------------------------------------------------------------------
# Loading


@dataclass
class ConfigIssue:
    path: tuple[str | int, ...]
    message: str


class ConfigError(Exception):
    """One or more problems in a config file; ``str()`` gives one line per problem."""

    def __init__(self, file: str, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.file = file
        self.lines = lines


def format_path(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Reader:
    """Builds plain Python data from a composed YAML tree, remembering each path's line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: dict[tuple, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")

    def read(self, node: yaml.Node | None, path: tuple = ()) -> Any:
        if node is None:
            return {}
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self._constructor.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                key = str(key)
                child = path + (key,)
                self.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    self.issues.append(ConfigIssue(child, f"duplicate key {key!r}"))
                out[key] = self.read(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
            return self._substitute(node.value, path)
        return self._constructor.construct_object(node, deep=True)

    def _substitute(self, text: str, path: tuple) -> str:
        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.issues.append(ConfigIssue(path, f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(replace, text)


def _line_for(lines: dict[tuple, int], path: tuple) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _pydantic_issues(error: ValidationError, data: Any) -> list[ConfigIssue]:
    issues = []
    for item in error.errors():
        path: list[str | int] = []
        cursor = data
        for part in item["loc"]:
            # drop discriminated-union tags and other loc parts that are not in the data
            if isinstance(cursor, dict) and part in cursor:
                cursor = cursor[part]
                path.append(part)
            elif isinstance(cursor, list) and isinstance(part, int) and part < len(cursor):
                cursor = cursor[part]
                path.append(part)
            elif item["type"] == "missing" and part == item["loc"][-1]:
                path.append(part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key {str(path[-1])!r}" if path else "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "union_tag_invalid":
            message = f"{message}"
        issues.append(ConfigIssue(tuple(path), message))
    return issues


def _cross_check(config: Config) -> list[ConfigIssue]:
    """Rules that span several keys: ids unique, references defined, providers known."""
    from probes.registry import adapter_class, provider_keys

    issues: list[ConfigIssue] = []
    canary_ids: set[str] = set()
    for i, canary in enumerate(config.canaries):
        if canary.id in canary_ids:
            issues.append(ConfigIssue(("canaries", i, "id"), f"duplicate canary id {canary.id!r}"))
        canary_ids.add(canary.id)
    service_ids: set[str] = set()
    for i, service in enumerate(config.services):
        if service.id in service_ids:
            issues.append(ConfigIssue(("services", i, "id"), f"duplicate service id {service.id!r}"))
        service_ids.add(service.id)
        for j, canary_id in enumerate(service.canaries):
            if canary_id not in canary_ids:
                issues.append(ConfigIssue(("services", i, "canaries", j), f"canary {canary_id!r} is not defined under canaries"))
        if service.provider not in provider_keys():
            issues.append(
                ConfigIssue(("services", i, "provider"), f"unknown provider {service.provider!r} (known: {', '.join(provider_keys())})")
            )
            continue
        options_model = adapter_class(service.provider).options_model
        if options_model is not None:
            try:
                options_model.model_validate(service.options)
            except ValidationError as exc:
                for issue in _pydantic_issues(exc, service.options):
                    issues.append(ConfigIssue(("services", i, "options") + issue.path, issue.message))
    for i, window in enumerate(config.maintenance):
        for j, service_id in enumerate(window.services):
            if service_id not in service_ids:
                issues.append(ConfigIssue(("maintenance", i, "services", j), f"service {service_id!r} is not defined"))
    channel_ids = {channel.id for channel in config.alerts.channels}
    for i, route in enumerate(config.alerts.routes):
        for j, channel_id in enumerate(route.channels):
            if channel_id not in channel_ids:
                issues.append(ConfigIssue(("alerts", "routes", i, "channels", j), f"channel {channel_id!r} is not defined"))
    if config.reports.weekly:
        for j, channel_id in enumerate(config.reports.weekly.channels):
            if channel_id not in channel_ids:
                issues.append(ConfigIssue(("reports", "weekly", "channels", j), f"channel {channel_id!r} is not defined"))
    return issues


M = TypeVar("M", bound=BaseModel)


def parse_yaml_model(
    text: str,
    file: str,
    model_cls: type[M],
    env: dict[str, str] | None = None,
    check: Callable[[M], list[ConfigIssue]] | None = None,
) -> M:
    """Parse YAML into ``model_cls``; raise ``ConfigError`` naming file, line and key path.

    ``${VAR}`` is replaced from ``env`` (default: the environment); ``check`` adds the
    rules that span several keys, reported with the same line numbers.
    """
    env = dict(os.environ) if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(file, [f"{file}:{line} {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, [f"{file}:1 {exc}"]) from None
    reader = _Reader(env)
    data = reader.read(root)
    if not isinstance(data, dict):
        keys = ", ".join(model_cls.model_fields)
        raise ConfigError(file, [f"{file}:1 (top level): expected a mapping of keys ({keys})"])
    issues = list(reader.issues)
    model = None
    if not issues:
        try:
            model = model_cls.model_validate(data)
        except ValidationError as exc:
            issues = _pydantic_issues(exc, data)
    if model is not None and check is not None:
        issues = check(model)
    if issues:
        lines = [f"{file}:{_line_for(reader.lines, i.path)} {format_path(i.path)}: {i.message}" for i in issues]
        raise ConfigError(file, lines)
    assert model is not None
    return model


def parse_config(text: str, file: str = DEFAULT_CONFIG_NAME, env: dict[str, str] | None = None) -> Config:
    """Parse and validate config text; raise ``ConfigError`` naming file, line and key path."""
    env = dict(os.environ) if env is None else env
    config = parse_yaml_model(text, file, Config, env, check=_cross_check)
    if env.get("GENSTATUS_DATABASE_URL"):
        config.database = env["GENSTATUS_DATABASE_URL"]
    return config


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """``-c PATH``, else ``$GENSTATUS_CONFIG``, else ``./genstatus.yaml``."""
    return Path(explicit or os.environ.get("GENSTATUS_CONFIG") or DEFAULT_CONFIG_NAME)


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    resolved = config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(resolved), [f"{resolved}: no such config file (create one with 'genstatus init')"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(resolved), [f"{resolved}: cannot read config: {exc}"]) from None
    return parse_config(text, str(resolved), env)
