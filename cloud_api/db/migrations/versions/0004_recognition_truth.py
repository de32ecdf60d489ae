"""recognition decisions and ground truth: verified samples, POS loyalty ids and payment
tokens on receipts, payment tokens tied to customers, one row per face decision

Existing samples stay unverified; customers' templates are fused from their samples when
each API process loads them, so no data needs converting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


#: SQLite rebuilds a table to add a NOT NULL column: keep AUTOINCREMENT, or ids of deleted
#: rows come back and processes that remember ids they have read would skip the new rows
_AUTOINCREMENT: dict[str, object] = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("face_samples", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(
            sa.Column("verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("receipts", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("loyalty_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("payment_token", sa.String(length=64), nullable=True))
    op.create_table(
        "payment_tokens",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("customer_id", _id(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_payment_tokens_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_payment_tokens")),
    )
    op.create_index(op.f("ix_payment_tokens_customer_id"), "payment_tokens", ["customer_id"])
    op.create_table(
        "recognition_decisions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("device_id", _id(), nullable=False),
        sa.Column("receipt_id", _id(), nullable=True),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("candidate_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("level", sa.String(length=24), nullable=True),
        sa.Column("searched", sa.Integer(), nullable=False),
        sa.Column("truth_customer_id", sa.BigInteger(), nullable=True),
        sa.Column("truth_source", sa.String(length=16), nullable=True),
        sa.Column("truth_had_face", sa.Boolean(), nullable=True),
        sa.Column("cashier", sa.String(length=16), nullable=True),
        sa.Column("visit_descriptors", sa.LargeBinary(), nullable=True),
        sa.Column("visit_qualities", sa.JSON(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_recognition_decisions_store_id_stores")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_recognition_decisions_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.id"],
            name=op.f("fk_recognition_decisions_receipt_id_receipts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_decisions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_recognition_decisions_store_at", "recognition_decisions", ["store_id", "at"]
    )
    op.create_index(
        "ix_recognition_decisions_rejections",
        "recognition_decisions",
        ["device_id", "cashier", "created_at"],
    )
    for column in ("receipt_id", "candidate_id", "customer_id", "truth_customer_id"):
        op.create_index(
            op.f(f"ix_recognition_decisions_{column}"), "recognition_decisions", [column]
        )


def downgrade() -> None:
    op.drop_table("recognition_decisions")
    op.drop_index(op.f("ix_payment_tokens_customer_id"), table_name="payment_tokens")
    op.drop_table("payment_tokens")
    with op.batch_alter_table("receipts", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("payment_token")
        batch.drop_column("loyalty_id")
    with op.batch_alter_table("face_samples", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("verified")
