"""Initial schema: catalog, raw probe results, hourly/daily rollups, incidents.

Generated with autogenerate against an empty SQLite database, then rewritten by hand:
the rollup tables share one column list, frozen here (outcomes and histogram buckets
as of this revision) so later changes to the models never alter this migration.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's INTEGER PRIMARY KEY autoincrements only as plain INTEGER.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

OUTCOMES = (
    "ok", "slow", "degraded_quality", "bad_output", "content_filtered", "rate_limited",
    "server_error", "timeout", "connection_error", "client_error", "auth_error", "probe_error",
)
HISTOGRAM_COLUMNS = tuple(f"h{i:02d}" for i in range(52))


def _counter(name: str, type_: sa.types.TypeEngine = sa.Integer()) -> sa.Column:
    return sa.Column(name, type_, nullable=False)


def _create_rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("bucket_start", UTC_DATETIME, nullable=False),
        _counter("n_total"),
        *[_counter(f"n_{outcome}") for outcome in OUTCOMES],
        _counter("latency_count"),
        _counter("latency_sum_ms", sa.Float()),
        sa.Column("latency_max_ms", sa.Float(), nullable=True),
        *[_counter(column) for column in HISTOGRAM_COLUMNS],
        _counter("quality_count"),
        _counter("quality_sum", sa.Float()),
        sa.Column("quality_min", sa.Float(), nullable=True),
        _counter("cost_sum", sa.Float()),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f(f"fk_{name}_service_id_services")),
        sa.PrimaryKeyConstraint("service_id", "region", "bucket_start", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_bucket_start", name, ["bucket_start"])


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
    )
    op.create_table(
        "canaries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("size", sa.String(length=20), nullable=False),
        sa.Column("seed", sa.String(length=20), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canaries")),
    )

    op.create_table(
        "probe_results",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("canary_id", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("submit_ms", sa.Float(), nullable=True),
        sa.Column("queue_ms", sa.Float(), nullable=True),
        sa.Column("generation_ms", sa.Float(), nullable=True),
        sa.Column("download_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("image_bytes", sa.Integer(), nullable=True),
        sa.Column("image_format", sa.String(length=16), nullable=True),
        sa.Column("image_width", sa.Integer(), nullable=True),
        sa.Column("image_height", sa.Integer(), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.Column("phash", sa.String(length=32), nullable=True),
        sa.Column("dhash", sa.String(length=32), nullable=True),
        sa.Column("hashes", sa.JSON(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("quality_verdict", sa.String(length=16), nullable=True),
        sa.Column("quality_flags", sa.JSON(), nullable=True),
        sa.Column("quality_reasons", sa.JSON(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("revised_prompt", sa.Text(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["canary_id"], ["canaries.id"], name=op.f("fk_probe_results_canary_id_canaries")),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_probe_results_service_id_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_results")),
    )
    op.create_index("ix_probe_results_service_started", "probe_results", ["service_id", "started_at"])
    op.create_index("ix_probe_results_started", "probe_results", ["started_at"])

    _create_rollup_table("rollup_hourly")
    _create_rollup_table("rollup_daily")

    op.create_table(
        "incidents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("impact", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("detected_at", UTC_DATETIME, nullable=False),
        sa.Column("resolved_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_incidents_service_id_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_service_resolved", "incidents", ["service_id", "resolved_at"])

    op.create_table(
        "incident_updates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("display_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"],
            name=op.f("fk_incident_updates_incident_id_incidents"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_updates")),
    )
    op.create_index(op.f("ix_incident_updates_incident_id"), "incident_updates", ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_updates")
    op.drop_table("incidents")
    op.drop_table("rollup_daily")
    op.drop_table("rollup_hourly")
    op.drop_table("probe_results")
    op.drop_table("canaries")
    op.drop_table("services")
