"""Idempotency key of probe results: a spooled result replayed twice is stored once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no index of its own: rows written before this revision have none, and the
    # replay looks keys up within a started_at range (ix_probe_results_started).
    op.add_column("probe_results", sa.Column("idempotency_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("probe_results", "idempotency_key")
