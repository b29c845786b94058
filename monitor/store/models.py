"""The SQL schema (SQLAlchemy 2 typed models).  Alembic (``migrations/``) owns changes to it.

Raw probe results go to ``probe_results``; ``rollup_hourly`` and ``rollup_daily`` keep per
(service, region, period) counts per outcome, a fixed log-bucket latency histogram
(``monitor.store.histogram``), quality mean/min and cost, so pages and reports never scan raw rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from monitor.enums import Outcome
from monitor.store.histogram import COLUMN_NAMES as HISTOGRAM_COLUMNS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite's INTEGER PRIMARY KEY autoincrements only as plain INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Stores UTC; always returns timezone-aware UTC datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[DeclarativeBase]) -> Table:
    """A mapped class's ``Table`` (SQLAlchemy types ``__table__`` as a plain ``FromClause``)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Service(Base):
    """A monitored service, synced from the config at start-up (rows are never deleted: history stays)."""

    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    group_name: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)  # False once removed from the config
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Canary(Base):
    __tablename__ = "canaries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    size: Mapped[str] = mapped_column(String(20))
    seed: Mapped[str | None] = mapped_column(String(20))  # an integer, "random" or NULL
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProbeResultRow(Base):
    """One probe run: every field of the result record (docs/contracts.md, result record)."""

    __tablename__ = "probe_results"
    __table_args__ = (
        Index("ix_probe_results_service_started", "service_id", "started_at"),
        Index("ix_probe_results_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    canary_id: Mapped[str | None] = mapped_column(ForeignKey("canaries.id"))
    region: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(24))
    submit_ms: Mapped[float | None] = mapped_column(Float)
    queue_ms: Mapped[float | None] = mapped_column(Float)
    generation_ms: Mapped[float | None] = mapped_column(Float)
    download_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(200))
    error_detail: Mapped[str | None] = mapped_column(Text)
    image_bytes: Mapped[int | None] = mapped_column(Integer)
    image_format: Mapped[str | None] = mapped_column(String(16))
    image_width: Mapped[int | None] = mapped_column(Integer)
    image_height: Mapped[int | None] = mapped_column(Integer)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    phash: Mapped[str | None] = mapped_column(String(32))
    dhash: Mapped[str | None] = mapped_column(String(32))
    hashes: Mapped[dict | None] = mapped_column(JSON)  # every hash, including later ones (whash, colorhash)
    quality_score: Mapped[float | None] = mapped_column(Float)
    quality_verdict: Mapped[str | None] = mapped_column(String(16))
    quality_flags: Mapped[list | None] = mapped_column(JSON)
    quality_reasons: Mapped[list | None] = mapped_column(JSON)
    cost: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(200))
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    #: uuid4 hex given by the store before the first write attempt; replaying a spooled result skips
    #: a key already stored (looked up within the batch's ``started_at`` range, on its index)
    idempotency_key: Mapped[str | None] = mapped_column(String(32))


def _rollup_table(name: str) -> Table:
    columns = [
        Column("service_id", String(64), ForeignKey("services.id"), primary_key=True),
        Column("region", String(64), primary_key=True),
        Column("bucket_start", UTCDateTime, primary_key=True),
        Column("n_total", Integer, nullable=False, default=0),
        *[Column(f"n_{outcome.value}", Integer, nullable=False, default=0) for outcome in Outcome],
        Column("latency_count", Integer, nullable=False, default=0),
        Column("latency_sum_ms", Float, nullable=False, default=0.0),
        Column("latency_max_ms", Float),
        *[Column(h, Integer, nullable=False, default=0) for h in HISTOGRAM_COLUMNS],
        Column("quality_count", Integer, nullable=False, default=0),
        Column("quality_sum", Float, nullable=False, default=0.0),
        Column("quality_min", Float),
        Column("cost_sum", Float, nullable=False, default=0.0),
    ]
    return Table(name, Base.metadata, *columns, Index(f"ix_{name}_bucket_start", "bucket_start"))


#: Rollups count canary and confirmation runs (not cheap health checks).
rollup_hourly = _rollup_table("rollup_hourly")
rollup_daily = _rollup_table("rollup_daily")


class Incident(Base):
    """An incident: opened, escalated and resolved by the coordinator (``monitor.detection.incidents``),
    or by hand on the admin side (``source = "manual"``: the detector never touches those).

    ``public_title``/``public_body`` override what the detector wrote, on every public page and feed;
    ``postmortem`` is Markdown published with the incident once written.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_service_resolved", "service_id", "resolved_at"),
        # The database refuses a second open incident with the detector's key (``Incident.key``):
        # one per (service, kind, audience), and -- service_id is NULL for agent incidents and NULLs
        # are distinct in unique indexes -- one agent incident per region (``key_region``).
        # Two plain-column partial indexes rather than one on coalesce(service_id, ''): autogenerate
        # can reflect and compare these on SQLite as well as PostgreSQL.
        Index("uq_incidents_open_service", "service_id", "kind", "audience", unique=True,
              sqlite_where=text("resolved_at IS NULL"), postgresql_where=text("resolved_at IS NULL")),
        Index("uq_incidents_open_region", "kind", "audience", "key_region", unique=True,
              sqlite_where=text("resolved_at IS NULL AND service_id IS NULL"),
              postgresql_where=text("resolved_at IS NULL AND service_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str | None] = mapped_column(ForeignKey("services.id"))
    kind: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16), default="public")
    impact: Mapped[str] = mapped_column(String(16), default="minor")
    status: Mapped[str] = mapped_column(String(16), default="investigating")
    title: Mapped[str] = mapped_column(String(300))
    regions: Mapped[list | None] = mapped_column(JSON)
    key_region: Mapped[str | None] = mapped_column(String(64))  # the region of a per-region (agent) incident
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")  # auto | manual
    public_title: Mapped[str | None] = mapped_column(String(300))
    public_body: Mapped[str | None] = mapped_column(Text)
    postmortem: Mapped[str | None] = mapped_column(Text)
    postmortem_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    updates: Mapped[list[IncidentUpdate]] = relationship(
        back_populates="incident", order_by="IncidentUpdate.created_at", cascade="all, delete-orphan"
    )


class IncidentUpdate(Base):
    __tablename__ = "incident_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    display_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the admin user who posted it; NULL for the detector's own updates
    author: Mapped[str | None] = mapped_column(String(64))

    incident: Mapped[Incident] = relationship(back_populates="updates")


class Maintenance(Base):
    """A maintenance window scheduled on the admin side (windows in the config are not stored).

    The detector honours it like a config window; ``status`` follows Statuspage's
    ``scheduled|in_progress|verifying|completed``: the time decides between the first two, an
    admin may mark it ``verifying`` or ``completed`` (ended early).
    """

    __tablename__ = "maintenances"
    __table_args__ = (Index("ix_maintenances_window", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    services: Mapped[list | None] = mapped_column(JSON)  # service ids; NULL = every service
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    author: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(Base):
    """An admin user (``genstatus user add``); the password is kept only as a scrypt hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A write-API token: only its SHA-256 is stored (the token itself is shown once, when made)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Subscriber(Base):
    """A visitor subscribed to public incidents and maintenance, by email or webhook.

    Nothing is sent before ``confirmed_at`` (double opt-in for email: the link carries ``token``).
    ``token`` is also the one-click unsubscribe capability in every message.
    """

    __tablename__ = "subscribers"
    __table_args__ = (Index("uq_subscribers_kind_address", "kind", "address", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # email | webhook
    address: Mapped[str] = mapped_column(String(500))
    services: Mapped[list | None] = mapped_column(JSON)  # service ids; NULL = every service
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertOutbox(Base):
    """Alert events written in the same transaction as the incident change that caused them.

    Channels deliver them later with retries (``delivered_at`` set once sent), so a crash
    between the two loses nothing and sends nothing twice.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        Index("ix_alert_outbox_pending", "delivered_at", "next_attempt_at"),
        Index("uq_alert_outbox_dedupe_key", "dedupe_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    service_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(24))  # open, escalate, ..., resolve, slo_burn
    audience: Mapped[str] = mapped_column(String(16))
    impact: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: set for events that must exist at most once (``slo_burn``: per service, tier and window); NULL otherwise
    dedupe_key: Mapped[str | None] = mapped_column(String(160))


class AlertDelivery(Base):
    """One outbox event for one routed channel: its attempts, the receiver's answer, and its state.

    ``pending`` -> ``sending`` (claimed by one dispatcher with a guarded update) -> ``sent``, or back
    to ``pending`` with a later ``next_attempt_at`` after a temporary error; ``failed`` after a
    permanent one; ``expired`` when it could not be delivered within ``alerts.give_up_after``.
    ``key`` is the idempotency key the channels send (webhook id, email Message-ID, ...).
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("uq_alert_deliveries_key", "key", unique=True),
        Index("ix_alert_deliveries_due", "state", "next_attempt_at"),
        Index("ix_alert_deliveries_incident", "incident_id", "channel_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("alert_outbox.id", ondelete="CASCADE"))
    incident_id: Mapped[int | None] = mapped_column(BigId)
    channel_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(96))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    receiver_status: Mapped[str | None] = mapped_column(String(120))
    last_error: Mapped[str | None] = mapped_column(Text)
    thread: Mapped[dict | None] = mapped_column(JSON)

class WeeklyReport(Base):
    """One ISO week's reliability report (``monitor.reports``): its figures as JSON (the documented
    schema), the rendered HTML and Markdown, and when it was sent.  Sending is claimed with a
    guarded update (``claimed_by``/``claimed_at``, as the alert deliveries are), so a restart or two
    coordinators never send a week twice."""

    __tablename__ = "weekly_reports"

    week: Mapped[str] = mapped_column(String(8), primary_key=True)  # "2026-W47"
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict] = mapped_column(JSON)
    html: Mapped[str] = mapped_column(Text)
    markdown: Mapped[str] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_error: Mapped[str | None] = mapped_column(Text)


class ReferenceImageRow(Base):
    """One reference picture of a (service, canary) profile (``genstatus baseline``): hashes,
    statistics and a small thumbnail -- never the full image -- so every agent and the web see it."""

    __tablename__ = "reference_images"
    __table_args__ = (Index("ix_reference_images_service_canary", "service_id", "canary_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    canary_id: Mapped[str] = mapped_column(ForeignKey("canaries.id"))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    region: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    model_version: Mapped[str | None] = mapped_column(String(200))
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    image_width: Mapped[int | None] = mapped_column(Integer)
    image_height: Mapped[int | None] = mapped_column(Integer)
    hashes: Mapped[dict] = mapped_column(JSON)
    stats: Mapped[dict] = mapped_column(JSON)
    histogram: Mapped[list] = mapped_column(JSON)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)


class ResultImageRow(Base):
    """The thumbnail of a recent result (and, when ``quality.keep_failing_images`` is set, the full
    failing image until ``keep_until``).  Only the newest few per canary are kept."""

    __tablename__ = "result_images"
    __table_args__ = (Index("ix_result_images_service_canary", "service_id", "canary_id", "result_id"),)

    result_id: Mapped[int] = mapped_column(ForeignKey("probe_results.id", ondelete="CASCADE"), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    canary_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    image_format: Mapped[str | None] = mapped_column(String(16))
    keep_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
