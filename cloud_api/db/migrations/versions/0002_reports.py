"""reports: staff customers, user sessions, sales facts on line items

- `customers.is_staff`: staff faces are excluded from visitor and customer counts.
- `user_sessions`: signed-in dashboard and report users (token sha256 only).
- `line_items.store_id / sold_at / customer_id`: copies of the receipt's, filled from the
  receipts here, so sales reports scan one table; with indexes for date and store ranges.
- `receipts (store_id, scanned_at)`: store and date range scans.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite recreates a table to change it; keep AUTOINCREMENT (ids are never reused)
_BATCH = {"table_kwargs": {"sqlite_autoincrement": True}}


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("customers", **_BATCH) as batch:  # type: ignore[arg-type]
        batch.add_column(
            sa.Column("is_staff", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    op.create_table(
        "user_sessions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("user_id", _id(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_index(op.f("ix_user_sessions_expires_at"), "user_sessions", ["expires_at"])

    with op.batch_alter_table("line_items", **_BATCH) as batch:  # type: ignore[arg-type]
        batch.add_column(sa.Column("store_id", _id(), nullable=True))
        batch.add_column(sa.Column("sold_at", _utc(), nullable=True))
        batch.add_column(sa.Column("customer_id", _id(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_line_items_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="SET NULL",
        )
    for column, source in (
        ("store_id", "store_id"),
        ("sold_at", "scanned_at"),
        ("customer_id", "customer_id"),
    ):
        op.execute(
            f"UPDATE line_items SET {column} = "
            f"(SELECT r.{source} FROM receipts r WHERE r.id = line_items.receipt_id)"
        )
    with op.batch_alter_table("line_items", **_BATCH) as batch:  # type: ignore[arg-type]
        batch.alter_column("store_id", existing_type=_id(), nullable=False)
        batch.alter_column("sold_at", existing_type=_utc(), nullable=False)
    op.create_index(op.f("ix_line_items_customer_id"), "line_items", ["customer_id"])
    op.create_index("ix_line_items_store_sold_at", "line_items", ["store_id", "sold_at"])
    op.create_index("ix_line_items_sold_at", "line_items", ["sold_at"])
    op.create_index("ix_receipts_store_scanned_at", "receipts", ["store_id", "scanned_at"])


def downgrade() -> None:
    op.drop_index("ix_receipts_store_scanned_at", table_name="receipts")
    op.drop_index("ix_line_items_sold_at", table_name="line_items")
    op.drop_index("ix_line_items_store_sold_at", table_name="line_items")
    op.drop_index(op.f("ix_line_items_customer_id"), table_name="line_items")
    with op.batch_alter_table("line_items", **_BATCH) as batch:  # type: ignore[arg-type]
        batch.drop_constraint(op.f("fk_line_items_customer_id_customers"), type_="foreignkey")
        batch.drop_column("customer_id")
        batch.drop_column("sold_at")
        batch.drop_column("store_id")
    op.drop_table("user_sessions")
    with op.batch_alter_table("customers", **_BATCH) as batch:  # type: ignore[arg-type]
        batch.drop_column("is_staff")
