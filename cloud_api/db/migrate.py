"""Alembic migrations run from code: no alembic.ini, the URL is set on the Config.

`upgrade(url)` brings a database (embedded SQLite or PostgreSQL) to the newest schema;
`current(url)` tells which revision a database is at; `check_schema_matches_models(url)`
lists what differs between a migrated database and `cloud_api.db.models` (used by tests).

On PostgreSQL the upgrade holds a transaction-level advisory lock, so several API
processes that all migrate on start-up run the migrations once, one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, pool
from sqlalchemy.engine import URL, make_url

from cloud_api.db.models import Base
from cloud_api.db.sqlite_wait import DEFAULT_SQLITE_BUSY_TIMEOUT_S

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = structlog.get_logger(__name__)

# Alembic keeps the running migration in module globals (`alembic.context`, `alembic.op`),
# so one process runs one Alembic command at a time; processes are serialised by the lock
# env.py takes on PostgreSQL.
_alembic_lock = threading.Lock()


class SchemaNotCurrent(Exception):
    """The database is not migrated, or is at another revision than this code needs."""


def normalise_url(url: str | URL) -> URL:
    """The URL to connect with: plain `postgresql://` means psycopg 3 (the driver installed)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL for logs and messages, with any password masked."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def alembic_config(url: str | URL) -> Config:
    """An Alembic Config built in code, pointing at the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = normalise_url(url).render_as_string(hide_password=False)
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migration_engine(url: str | URL) -> Engine:
    """A pool-less engine for migrations and schema checks (no app-level SQLite pragmas).

    SQLite foreign-key enforcement stays off here, as Alembic's batch mode needs: with it
    on, the table copies batch mode makes would cascade deletes into child tables.
    """
    parsed = normalise_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        # wait for another process's migration or write as the app does, not pysqlite's 5 s
        connect_args["timeout"] = DEFAULT_SQLITE_BUSY_TIMEOUT_S
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(
        parsed, poolclass=pool.NullPool, hide_parameters=True, connect_args=connect_args
    )


@contextmanager
def _connect(url: str | URL) -> Iterator[Connection]:
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _sqlite_file_missing(url: str | URL) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()


def current(url: str) -> str | None:
    """The revision the database is at; None when it has never been migrated.

    A SQLite file that does not exist is reported as None and is not created.
    """
    if _sqlite_file_missing(url):
        return None
    with _connect(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest)."""
    shown = display_url(url)
    before = current(url)
    log.info("database_upgrade_starting", database=shown, current=before, target=revision)
    with _alembic_lock:
        command.upgrade(alembic_config(url), revision)
    after = current(url)
    log.info(
        "database_upgrade_finished",
        database=shown,
        revision=after,
        changed=before != after,
    )


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" removes every table)."""
    shown = display_url(url)
    log.warning("database_downgrade_starting", database=shown, target=revision)
    with _alembic_lock:
        command.downgrade(alembic_config(url), revision)
    log.info("database_downgrade_finished", database=shown, revision=current(url))


def ensure_current(url: str) -> None:
    """Raise SchemaNotCurrent unless the database is at the newest revision."""
    at = current(url)
    head = head_revision()
    if at is None:
        raise SchemaNotCurrent(
            f"database {display_url(url)} has no StoreSight schema; "
            "run `storesight-cloud migrate` first"
        )
    if at != head:
        raise SchemaNotCurrent(
            f"database {display_url(url)} is at revision {at}, this version needs {head}; "
            "run `storesight-cloud migrate`"
        )


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped per column
        return "; ".join(_describe(item) for item in diff)
    return repr(diff)


def check_schema_matches_models(url: str) -> list[str]:
    """Differences between the migrated database and the ORM models; [] when they match."""
    with _connect(url) as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "target_metadata": Base.metadata},
        )
        return [_describe(diff) for diff in compare_metadata(context, Base.metadata)]
