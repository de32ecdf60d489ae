"""Engines and sessions: embedded SQLite by default, PostgreSQL by URL.

Every engine is made with `hide_parameters=True`: a database error's message (and so any
log line or traceback holding it) shows the SQL, never the values bound to it (names, VIP
numbers, descriptors).

Timeouts: a database that accepts a connection and then never answers must not hang a request.
PostgreSQL connections give up connecting after `connect_timeout_s` and the server cancels any
statement running longer than `statement_timeout_s`; SQLite waits for a lock at most
`statement_timeout_s` (its busy timeout).

SQLite transactions opened with an explicit `session.begin()` (every transaction that writes:
`with sessions() as session, session.begin():` and `transaction(factory)`) start with
`BEGIN IMMEDIATE`, taking the write lock up front: a transaction that reads and then writes
would otherwise fail at once with `database is locked` when another writer went first,
whatever the busy timeout. Read-only sessions (autobegun) stay `BEGIN DEFERRED`, so readers
never wait for a writer (WAL).

Deleted rows are overwritten in SQLite's pages (`PRAGMA secure_delete=ON`); after a deletion
`checkpoint_wal(engine)` copies the write-ahead log back into the database file and truncates
it, so the old page images holding the deleted rows leave the WAL too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from cloud_api.db.sqlite_wait import DEFAULT_SQLITE_BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from cloud_api.settings import CloudSettings

log = structlog.get_logger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 10.0

#: the execution option that chooses how a SQLite transaction begins
SQLITE_BEGIN = "storesight_sqlite_begin"


def make_engine(
    url: str,
    *,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    statement_timeout_s: float | None = None,
) -> Engine:
    """An engine for `url`; `statement_timeout_s` None: no statement limit (PostgreSQL) and
    the default busy timeout (SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_s = statement_timeout_s or DEFAULT_SQLITE_BUSY_TIMEOUT_S
        engine = create_engine(
            url,
            connect_args={"timeout": busy_s, "check_same_thread": False},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_connect(int(busy_s * 1000)))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, round(connect_timeout_s))
        if statement_timeout_s is not None:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=max(1.0, connect_timeout_s),
        connect_args=connect_args,
        hide_parameters=True,
    )


def _sqlite_connect(busy_ms: int) -> Any:
    def on_connect(connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN handling off: _sqlite_begin says how each transaction starts
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left
        cursor.close()

    return on_connect


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


class StoreSession(Session):
    """A Session whose explicit `begin()` on SQLite takes the write lock at once."""

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested)
        if not nested and self.get_bind().dialect.name == "sqlite":
            self.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        return transaction


def open_database(settings: CloudSettings) -> Engine:
    """The service's database engine, the schema upgraded first when `auto_migrate` says so."""
    from cloud_api.db.migrate import upgrade

    if settings.auto_migrate:
        upgrade(settings.database_url)
    return make_engine(
        settings.database_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s,
    )


#: `Session.info` key set on every session of a store server (`mode = "store"`)
STORE_SERVER = "storesight_store_server"


def session_factory(engine: Engine, *, store_server: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`. `store_server`: this service is a store's own server (in-store
    mode), which changes what the report rollups do (`is_store_server`)."""
    info = {STORE_SERVER: True} if store_server else {}
    return sessionmaker(engine, class_=StoreSession, expire_on_commit=False, info=info)


def is_store_server(session: Session) -> bool:
    """Whether `session` belongs to a store server: it computes its own store's rollups and
    queues every changed store-day for head office; head office instead leaves the rollups
    of its in-store stores (which arrive from their store servers) alone."""
    return bool(session.info.get(STORE_SERVER))


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def checkpoint_wal(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the database file and truncate it (after a
    deletion, so the deleted rows' old page images leave the log). Elsewhere: nothing."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside any transaction: none may be open for this
    try:
        cursor = raw.cursor()
        busy, _frames, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        raw.close()
    if busy:
        log.info("sqlite_checkpoint_incomplete", reason="readers or a writer still active")


def error_line(error: BaseException) -> str:
    """The first line of a database error, for a message or a log line: the driver's own
    words when there are some (the SQL's parameters are hidden by `make_engine`), else the
    error's type."""
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
