"""Alembic environment for the StoreSight cloud database.

There is no alembic.ini: `cloud_api.db.migrate` builds the Alembic Config in code and sets
`sqlalchemy.url` on it. SQLite runs in batch mode (`render_as_batch`), since it can only
alter tables by copying them. PostgreSQL migrations hold an advisory lock for the whole
transaction, so concurrent `upgrade` calls run one after the other.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import structlog
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import text

from cloud_api.db.migrate import is_sqlite, migration_engine
from cloud_api.db.models import Base

# "StoreSig" as a 64-bit integer: the advisory-lock key shared by every migrating process.
MIGRATION_LOCK_ID = 0x53746F7265536967

config = context.config
target_metadata = Base.metadata
log = structlog.get_logger("cloud_api.db.migrations")


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "the Alembic config has no sqlalchemy.url; run migrations through "
            "cloud_api.db.migrate (or `storesight-cloud migrate`)"
        )
    return url


def _log_step(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    """Alembic's on_version_apply hook: one structured log line per revision applied."""
    log.info(
        "migration_applied",
        direction="upgrade" if step.is_upgrade else "downgrade",
        from_revision=", ".join(step.source_revision_ids) or None,
        to_revision=", ".join(step.destination_revision_ids) or None,
        description=getattr(step.up_revision, "doc", None),
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade --sql`)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=is_sqlite(url),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    url = _url()
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                on_version_apply=_log_step,
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID}
                    )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
