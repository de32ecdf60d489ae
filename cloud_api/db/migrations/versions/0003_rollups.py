"""report rollups: traffic, sales, categories, baskets, visitor segments, segment sales,
buyers, customers' first purchases, dirty store-days and the refresh watermark

Derived data only (cloud_api.reports.rollups rebuilds it from receipts and sightings), so
the downgrade simply drops it. Also an index on sightings.customer_id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "rollup_state",
    "rollup_dirty",
    "rollup_customer_firsts",
    "rollup_buyers",
    "rollup_segment_sales",
    "rollup_visitor_segments",
    "rollup_baskets",
    "rollup_categories",
    "rollup_sales",
    "rollup_traffic",
)


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _qty() -> sa.Numeric:  # type: ignore[type-arg]
    return sa.Numeric(precision=16, scale=3)


def _money() -> sa.Numeric:  # type: ignore[type-arg]
    return sa.Numeric(precision=16, scale=2)


def upgrade() -> None:
    # a customer's sightings are found when they are deleted or made staff
    op.create_index(op.f("ix_sightings_customer_id"), "sightings", ["customer_id"])
    op.create_table(
        "rollup_traffic",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("anonymous", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", "hour", name=op.f("pk_rollup_traffic")),
    )
    op.create_table(
        "rollup_sales",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", _qty(), nullable=False),
        sa.Column("revenue", _money(), nullable=False),
        sa.Column("receipts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", "sku", name=op.f("pk_rollup_sales")),
    )
    op.create_index(op.f("ix_rollup_sales_day"), "rollup_sales", ["day"])
    op.create_table(
        "rollup_categories",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("quantity", _qty(), nullable=False),
        sa.Column("revenue", _money(), nullable=False),
        sa.Column("receipts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", "category", name=op.f("pk_rollup_categories")),
    )
    op.create_table(
        "rollup_baskets",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("revenue", _money(), nullable=False),
        sa.Column("items", _qty(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", name=op.f("pk_rollup_baskets")),
    )
    op.create_table(
        "rollup_visitor_segments",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gender", sa.String(length=8), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "day", "gender", "age_band", name=op.f("pk_rollup_visitor_segments")
        ),
    )
    op.create_table(
        "rollup_segment_sales",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gender", sa.String(length=8), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("revenue", _money(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id",
            "day",
            "gender",
            "age_band",
            "category",
            name=op.f("pk_rollup_segment_sales"),
        ),
    )
    op.create_table(
        "rollup_buyers",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("buyers", sa.Integer(), nullable=False),
        sa.Column("new_customers", sa.Integer(), nullable=False),
        sa.Column("returning_customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "day", name=op.f("pk_rollup_buyers")),
    )
    op.create_table(
        "rollup_customer_firsts",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", _id(), nullable=False),
        sa.Column("customer_id", _id(), nullable=False),
        sa.Column("first_at", _utc(), nullable=False),
        sa.Column("second_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_rollup_customer_firsts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "scope", "scope_id", "customer_id", name=op.f("pk_rollup_customer_firsts")
        ),
    )
    op.create_index(
        op.f("ix_rollup_customer_firsts_customer_id"), "rollup_customer_firsts", ["customer_id"]
    )
    op.create_index(
        "ix_rollup_customer_firsts_scope_first",
        "rollup_customer_firsts",
        ["scope", "scope_id", "first_at"],
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("store_id", _id(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", name=op.f("pk_rollup_dirty")),
    )
    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.BigInteger(), nullable=False),
        sa.Column("sighting_id", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_state")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    op.drop_index(op.f("ix_sightings_customer_id"), table_name="sightings")
