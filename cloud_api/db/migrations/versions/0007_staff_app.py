"""the staff app: greetings of arrivals, customers' opt-out, alerts by age

`arrival_greetings` records which staff member greeted the customer of an arrival alert
(one per alert); `customers.opted_out_at` marks a customer who withdrew their consent (never
raised to staff again); `alert_events.created_at` is indexed for retention and the day list.
The `store_staff` role needs no schema change (`users.role` is text).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: keep AUTOINCREMENT should SQLite rebuild the table (ids of deleted rows never come back)
_AUTOINCREMENT: dict[str, object] = {"sqlite_autoincrement": True}
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customers", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_alert_events_created_at"), "alert_events", ["created_at"])
    op.create_table(
        "arrival_greetings",
        sa.Column("alert_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("by_name", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert_events.id"],
            name=op.f("fk_arrival_greetings_alert_id_alert_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_arrival_greetings_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_arrival_greetings")),
    )


def downgrade() -> None:
    op.drop_table("arrival_greetings")
    op.drop_index(op.f("ix_alert_events_created_at"), table_name="alert_events")
    with op.batch_alter_table("customers", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("opted_out_at")
