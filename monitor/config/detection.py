"""The ``detection:`` config section: the detector's tunable settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from monitor.config.durations import Duration


class DetectionSettings(BaseModel):
    """The ``detection:`` section of the config; defaults are the documented ones."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    failure_threshold: int = Field(2, ge=1, le=20)  # the fewest bad results in a row that may open an incident
    # expected false public incidents per service per 90 days: sizes the evidence to each service's noise
    # (a huge budget, up to 10 000, leaves failure_threshold alone to decide)
    false_incident_budget: float = Field(0.25, gt=0, le=10_000)
    max_confirmations: int = Field(5, ge=0, le=10)  # extra runs after a failed canary, while they keep failing
    success_threshold: int = Field(2, ge=1, le=20)
    confirm_delay: Duration = timedelta(seconds=20)
    recovery_period: Duration | None = None  # default: one interval of the service
    reopen_window: Duration = timedelta(minutes=30)  # a failure this soon after resolving reopens the incident
    agent_timeout: Duration = timedelta(minutes=15)
    latency_window: Duration = timedelta(hours=1)
    latency_min_samples: int = Field(5, ge=1)
    default_interval: Duration = timedelta(minutes=5)  # for services a trace names but no config has
