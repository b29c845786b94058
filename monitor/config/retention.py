"""The ``retention:`` config section: how long raw data is kept (``monitor.store.retention`` applies it)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.config.durations import Duration, format_duration


class RetentionSettings(BaseModel):
    """The ``retention:`` section of the config.  Rollups (``rollup_hourly``/``rollup_daily``) are
    kept forever and never touched: uptime, latency and SLO figures come from them.

    Keys and defaults::

        retention:
          raw_results: 30d        # raw probe_results rows, counted from the end of their UTC day
                                  #   (when that day's rollup is final); at least 2d.  A row whose
                                  #   thumbnail/kept image is still kept stays until the image goes.
          thumbnails: 7d          # result thumbnails older than this ...
          thumbnails_kept: 12     # ... beyond the newest N per (service, canary) are deleted
                                  #   (a full failing image is never deleted before its keep_until)
          delivered_alerts: 30d   # alert_outbox rows delivered longer ago than this
          undelivered_alerts: 90d # alert_outbox rows never delivered, created longer ago than this
                                  #   (given up on; generous so a long channel outage still retries)

    Full failing images (``quality.keep_failing_images``) are dropped once their ``keep_until`` has
    passed (their thumbnail stays, under the thumbnail rules above).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    raw_results: Duration = timedelta(days=30)
    thumbnails: Duration = timedelta(days=7)
    thumbnails_kept: int = Field(12, ge=1, le=1_000_000)  # a bigger number overflowed SQLite's integers
    delivered_alerts: Duration = timedelta(days=30)
    undelivered_alerts: Duration = timedelta(days=90)

    @field_validator("raw_results")
    @classmethod
    def _raw_results(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=2):  # detection and the SLO checks read the last hours of raw results
            raise ValueError(f"must be at least 2d, got {format_duration(value)}")
        return value

    @field_validator("delivered_alerts", "undelivered_alerts", "thumbnails")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError(f"must be at least 1d, got {format_duration(value)}")
        return value
