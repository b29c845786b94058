"""Reference profiles and result thumbnails (quality scoring).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reference_images",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("canary_id", sa.String(length=64), nullable=False),
        sa.Column("captured_at", UTC_DATETIME, nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.Column("image_width", sa.Integer(), nullable=True),
        sa.Column("image_height", sa.Integer(), nullable=True),
        sa.Column("hashes", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("histogram", sa.JSON(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["canary_id"], ["canaries.id"], name=op.f("fk_reference_images_canary_id_canaries")),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_reference_images_service_id_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_images")),
    )
    op.create_index("ix_reference_images_service_canary", "reference_images", ["service_id", "canary_id"])
    op.create_table(
        "result_images",
        sa.Column("result_id", BIG_ID, nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("canary_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("image_format", sa.String(length=16), nullable=True),
        sa.Column("keep_until", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["result_id"], ["probe_results.id"], name=op.f("fk_result_images_result_id_probe_results"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("result_id", name=op.f("pk_result_images")),
    )
    op.create_index("ix_result_images_service_canary", "result_images", ["service_id", "canary_id", "result_id"])


def downgrade() -> None:
    op.drop_index("ix_result_images_service_canary", table_name="result_images")
    op.drop_table("result_images")
    op.drop_index("ix_reference_images_service_canary", table_name="reference_images")
    op.drop_table("reference_images")
