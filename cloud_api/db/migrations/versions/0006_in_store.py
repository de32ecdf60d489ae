"""in-store mode: `stores.mode` and the store server's upstream outbox

`stores.mode` is "cloud" (faces and receipts come to this service) or "store" (a store
server in the store keeps them and sends only aggregates: `upstream_pending` holds the
store-days whose rollups changed since they were last accepted upstream).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: keep AUTOINCREMENT should SQLite rebuild the table (ids of deleted stores never come back)
_AUTOINCREMENT: dict[str, object] = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("stores", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("mode", sa.String(8), nullable=False, server_default="cloud"))
    op.create_table(
        "upstream_pending",
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", name=op.f("pk_upstream_pending")),
    )
    op.create_table(
        "rollup_cohorts",
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gap_days", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", "gap_days", name=op.f("pk_rollup_cohorts")),
    )


def downgrade() -> None:
    op.drop_table("rollup_cohorts")
    op.drop_table("upstream_pending")
    with op.batch_alter_table("stores", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("mode")
