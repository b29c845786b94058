"""Configuration: the file's shape (``schema``), how it is read (``loader``), durations.

The config layer imports nothing above it: checks that need other layers (provider options)
are passed in by the caller (``load_config(..., checks=...)``).
"""

from monitor.config.alerts import (
    AlertsConfig,
    AppriseChannel,
    Channel,
    ConsoleChannel,
    EmailChannel,
    PagerDutyChannel,
    RouteConfig,
    SlackChannel,
    SMTPConfig,
    WebhookChannel,
)
from monitor.config.detection import DetectionSettings
from monitor.config.durations import Duration, format_duration, parse_duration
from monitor.config.loader import (
    ConfigError,
    ConfigIssue,
    config_path,
    format_path,
    load_config,
    parse_config,
    parse_yaml_model,
)
from monitor.config.schema import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_DATABASE,
    CanaryConfig,
    ClipConfig,
    Config,
    MaintenanceWindow,
    QualityConfig,
    ReportsConfig,
    ServiceConfig,
    SiteConfig,
    SLOConfig,
    Slug,
    Strict,
    WeeklyReportConfig,
)

__all__ = [
    "AlertsConfig",
    "AppriseChannel",
    "CanaryConfig",
    "Channel",
    "ClipConfig",
    "Config",
    "ConsoleChannel",
    "ConfigError",
    "ConfigIssue",
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_DATABASE",
    "DetectionSettings",
    "Duration",
    "EmailChannel",
    "MaintenanceWindow",
    "PagerDutyChannel",
    "QualityConfig",
    "ReportsConfig",
    "RouteConfig",
    "SLOConfig",
    "SMTPConfig",
    "ServiceConfig",
    "SiteConfig",
    "SlackChannel",
    "Slug",
    "Strict",
    "WebhookChannel",
    "WeeklyReportConfig",
    "config_path",
    "format_duration",
    "format_path",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_yaml_model",
]
