"""users can be disabled: `users.disabled_at` (NULL for an active user)

A disabled user cannot sign in and their sessions stop working; `storesight-cloud admin
enable-user` clears the column again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: keep AUTOINCREMENT should SQLite rebuild the table (ids of deleted users never come back)
_AUTOINCREMENT: dict[str, object] = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("users", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("disabled_at")
