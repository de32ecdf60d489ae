"""Database fixtures for the cloud tests: the same test on SQLite and on PostgreSQL.

Import the fixtures a test module uses (pytest finds fixtures by name in the module):

    from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)

    def test_something(migrated_url: str) -> None:  # noqa: F811
        ...  # runs twice: test_something[sqlite] and test_something[postgresql]

(or add `pytest_plugins = ["tests.cloud_fixtures"]` to tests/conftest.py once, and drop the
imports and the noqa comments.)

- `migrated_url` (function scope): a new database migrated to head, for this test alone.
- `empty_database_url` (function scope): a new, empty database (nothing migrated).
- `module_migrated_url` (module scope): one migrated database shared by the module's tests
  on each backend; cheaper, so tests must not collide (use unique names and codes).

All are parametrised ["sqlite", "postgresql"]. SQLite databases are files in pytest's tmp
dirs. PostgreSQL databases are created with unique names on the server at
STORESIGHT_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) and
dropped afterwards, after terminating connections still open on them. When that server
cannot be reached the PostgreSQL variants are skipped with the reason; set
STORESIGHT_TEST_REQUIRE_POSTGRES=1 (as CI should) to make that a failure instead.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from cloud_api.db.migrate import normalise_url, upgrade

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "STORESIGHT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("STORESIGHT_TEST_REQUIRE_POSTGRES", "") == "1"


def _postgres_admin_engine() -> Engine:
    return create_engine(
        normalise_url(POSTGRES_ADMIN_URL),
        poolclass=pool.NullPool,
        isolation_level="AUTOCOMMIT",  # CREATE/DROP DATABASE cannot run in a transaction
        connect_args={"connect_timeout": 3},
    )


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it can."""
    engine = _postgres_admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        first_line = str(getattr(error, "orig", error)).strip().splitlines()[:1]
        shown = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {shown}: {' '.join(first_line)}"
    finally:
        engine.dispose()
    return None


def drop_postgres_database(name: str) -> None:
    """Drop a test database, terminating any connections still open on it first."""
    engine = _postgres_admin_engine()
    try:
        with engine.connect() as connection:
            if (connection.dialect.server_version_info or (0,)) >= (13,):
                # terminates the remaining connections and drops, in one statement
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database with a unique name; dropped on exit."""
    name = f"storesight_test_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _postgres_admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    try:
        url = normalise_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        drop_postgres_database(name)


@contextmanager
def temporary_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database on `backend`, removed on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'storesight-{secrets.token_hex(4)}.db'}"
    elif backend == "postgresql":
        with temporary_postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


def skip_unless_postgres() -> None:
    """Skip the calling test (fail, under STORESIGHT_TEST_REQUIRE_POSTGRES=1) without PG."""
    reason = postgres_unavailable()
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (STORESIGHT_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)


def _backend(request: pytest.FixtureRequest) -> str:
    """The backend a parametrised fixture runs on; skips (or fails) when it is unusable."""
    backend: str = request.param
    if backend == "postgresql":
        skip_unless_postgres()
    return backend


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own, migrated to head: [sqlite] and [postgresql]."""
    with temporary_database(_backend(request), tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (nothing migrated): [sqlite] and [postgresql]."""
    with temporary_database(_backend(request), tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_migrated_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database shared by a module's tests (per backend): cheaper, not isolated."""
    with temporary_database(_backend(request), tmp_path_factory.mktemp("db")) as url:
        upgrade(url)
        yield url


def west_harbour_till(database_url: str) -> str:
    """A region "West", its store W042 "West Harbour" and a till "till 1" there, in the
    migrated database at `database_url`; the till's API key."""
    from cloud_api import admin
    from cloud_api.db.session import make_engine, session_factory, transaction

    sessions = session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        admin.create_region(session, "West")
        admin.create_store(session, "West", "W042", "West Harbour")
        _, key = admin.create_device(session, "W042", "till", "till 1")
    return key
