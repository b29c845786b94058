"""One open incident per key, one ``slo_burn`` alert per window: unique indexes for several coordinators.

``incidents.key_region`` holds the region of an agent incident (those are keyed per region and
have no service).  Two partial unique indexes (``WHERE resolved_at IS NULL``) refuse a second open
incident for the same (service, kind, audience) or, for service-less incidents, the same (kind,
audience, region).  ``alert_outbox.dedupe_key`` (unique; NULL for events that need none) keeps an
``slo_burn`` alert from being written twice for the same window.

Existing rows are brought in line first: ``key_region`` is filled in for open agent incidents, and
duplicate open incidents (several coordinators before this revision) are resolved but for the oldest,
so the unique index can be built.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
OPEN = "resolved_at IS NULL"
OPEN_WITHOUT_SERVICE = "resolved_at IS NULL AND service_id IS NULL"

incidents = sa.table(
    "incidents",
    sa.column("id", sa.BigInteger()), sa.column("service_id", sa.String()), sa.column("kind", sa.String()),
    sa.column("audience", sa.String()), sa.column("status", sa.String()), sa.column("regions", sa.JSON()),
    sa.column("key_region", sa.String()), sa.column("resolved_at", UTC_DATETIME),
)
incident_updates = sa.table(
    "incident_updates",
    sa.column("incident_id", sa.BigInteger()), sa.column("status", sa.String()), sa.column("body", sa.Text()),
    sa.column("created_at", UTC_DATETIME), sa.column("display_at", UTC_DATETIME),
)


def _now(bind: sa.Connection) -> datetime:
    now = datetime.now(UTC)
    return now.replace(tzinfo=None) if bind.dialect.name == "sqlite" else now  # as UTCDateTime stores it


def _prepare_open_incidents(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.select(incidents.c.id, incidents.c.service_id, incidents.c.kind, incidents.c.audience, incidents.c.regions)
        .where(incidents.c.resolved_at.is_(None)).order_by(incidents.c.id)
    ).all()
    seen: dict[tuple, int] = {}
    now = _now(bind)
    for id_, service_id, kind, audience, regions in rows:
        key_region = regions[0] if kind == "agent" and regions else None
        if key_region is not None:
            bind.execute(incidents.update().where(incidents.c.id == id_).values(key_region=key_region))
        key = (service_id, kind, audience, None if service_id is not None else key_region)
        if key not in seen:
            seen[key] = id_
            continue
        bind.execute(incidents.update().where(incidents.c.id == id_).values(status="resolved", resolved_at=now))
        bind.execute(incident_updates.insert().values(
            incident_id=id_, status="resolved", created_at=now, display_at=now,
            body=f"Closed as a duplicate of incident #{seen[key]} (opened twice by concurrent coordinators)."))


def upgrade() -> None:
    op.add_column("incidents", sa.Column("key_region", sa.String(length=64), nullable=True))
    _prepare_open_incidents(op.get_bind())
    op.create_index("uq_incidents_open_service", "incidents", ["service_id", "kind", "audience"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.create_index("uq_incidents_open_region", "incidents", ["kind", "audience", "key_region"], unique=True,
                    sqlite_where=sa.text(OPEN_WITHOUT_SERVICE), postgresql_where=sa.text(OPEN_WITHOUT_SERVICE))
    op.add_column("alert_outbox", sa.Column("dedupe_key", sa.String(length=160), nullable=True))
    op.create_index("uq_alert_outbox_dedupe_key", "alert_outbox", ["dedupe_key"], unique=True)


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it), not a batch copy: copying ``incidents``
    # would drop the table and, with foreign keys on, cascade-delete every incident update
    op.drop_index("uq_alert_outbox_dedupe_key", table_name="alert_outbox")
    op.drop_column("alert_outbox", "dedupe_key")
    op.drop_index("uq_incidents_open_region", table_name="incidents")
    op.drop_index("uq_incidents_open_service", table_name="incidents")
    op.drop_column("incidents", "key_region")
