"""The cloud database: migrations, administration, secrets and the admin CLI.

Database tests run on SQLite and on PostgreSQL (see tests/cloud_fixtures.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.admin import AdminError
from cloud_api.cli import main as cli_main
from cloud_api.db.migrate import (
    SchemaNotCurrent,
    check_schema_matches_models,
    current,
    downgrade,
    ensure_current,
    head_revision,
    migration_engine,
    upgrade,
)
from cloud_api.db.models import Base, Device, Region, User
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.security import (
    hash_password,
    needs_rehash,
    new_api_key,
    parse_prefix,
    verify_api_key,
    verify_password,
)
from tests.cloud_fixtures import (  # noqa: F401  (fixtures)
    empty_database_url,
    migrated_url,
    module_migrated_url,
    skip_unless_postgres,
    temporary_postgres_database,
)

KEY_PATTERN = re.compile(r"ssk_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}")


def unique(prefix: str) -> str:
    """A name no other test uses: the module's tests share one database per backend."""
    return f"{prefix}-{secrets.token_hex(4)}"


def _tables(url: str) -> set[str]:
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def sessions(module_migrated_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    engine = make_engine(module_migrated_url)
    yield session_factory(engine)
    engine.dispose()


# --- migrations --------------------------------------------------------------------------


def test_upgrade_from_empty_to_head(empty_database_url: str) -> None:  # noqa: F811
    assert current(empty_database_url) is None
    with pytest.raises(SchemaNotCurrent, match="run `storesight-cloud migrate` first"):
        ensure_current(empty_database_url)

    upgrade(empty_database_url)

    assert current(empty_database_url) == head_revision() == "0007"
    assert _tables(empty_database_url) == set(Base.metadata.tables) | {"alembic_version"}
    ensure_current(empty_database_url)


def test_sqlite_never_reuses_the_id_of_a_deleted_row(tmp_path: Path) -> None:
    """Every table the models mark `sqlite_autoincrement` keeps AUTOINCREMENT through every
    migration (SQLite rebuilds a table to add some columns). Without it, the id of the newest
    deleted row comes back: a process that remembers sample ids it has read skips the new one."""
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    upgrade(url)
    wanted = {
        name
        for name, table in Base.metadata.tables.items()
        if table.dialect_kwargs.get("sqlite_autoincrement")
    }
    assert "face_samples" in wanted and "receipts" in wanted
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type='table'")
            )
            schema: dict[str, str] = {name: sql for name, sql in rows}
    finally:
        engine.dispose()
    assert {name for name in wanted if "AUTOINCREMENT" not in schema[name]} == set()


def test_schema_matches_models(module_migrated_url: str) -> None:  # noqa: F811
    assert check_schema_matches_models(module_migrated_url) == []


def test_upgrade_twice_is_a_no_op(migrated_url: str) -> None:  # noqa: F811
    engine = make_engine(migrated_url)
    try:
        with transaction(session_factory(engine)) as session:
            admin.create_region(session, "Kept")

        upgrade(migrated_url)

        assert current(migrated_url) == head_revision()
        with session_factory(engine)() as session:
            assert session.scalars(select(Region.name)).all() == ["Kept"]
    finally:
        engine.dispose()
    assert check_schema_matches_models(migrated_url) == []


def test_downgrade_to_base_and_up_again(migrated_url: str) -> None:  # noqa: F811
    downgrade(migrated_url, "base")
    assert current(migrated_url) is None
    assert _tables(migrated_url) == {"alembic_version"}

    upgrade(migrated_url)
    assert check_schema_matches_models(migrated_url) == []


def test_concurrent_upgrades_on_postgresql_migrate_once() -> None:
    """API processes that all migrate on start-up: one migrates, the others wait and see head."""
    skip_unless_postgres()
    script = (
        "import sys; from storesight_common.logs import configure_logging; "
        "configure_logging(json=True); "
        "from cloud_api.db.migrate import upgrade; upgrade(sys.argv[1])"
    )
    with temporary_postgres_database() as url:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", script, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=60) for process in processes]
        for process, (_, stderr) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, stderr
        applied = sorted(stderr.count('"migration_applied"') for _, stderr in outputs)
        revisions = int(head_revision())  # numbered 0001, 0002, ...
        assert applied == [0, revisions]  # one process applied every revision, the other none
        assert current(url) == head_revision()
        assert check_schema_matches_models(url) == []


def test_current_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    assert current(f"sqlite:///{path}") is None
    assert not path.exists()


# --- administration ------------------------------------------------------------------------


def test_admin_creates_region_store_device_and_user(sessions: sessionmaker[Session]) -> None:
    region_name, code, email = unique("Region"), unique("ST"), f"{unique('ann')}@example.com"
    with transaction(sessions) as session:
        region = admin.create_region(session, f"  {region_name} ")
        store = admin.create_store(session, region_name, code, "High Street")
        by_id = admin.create_store(session, region.id, unique("ST"), "Station")
        device, key = admin.create_device(session, code, "till", "Till 1")
        admin.create_device(session, code, "entrance", "Door")
        user = admin.create_user(
            session, email.upper(), "Ann", "store_manager", "correct horse", code
        )
        head_office = admin.create_user(
            session, f"{unique('hq')}@example.com", "Hugh", "head_office", "battery staple"
        )
    assert region.name == region_name
    assert store.region_id == by_id.region_id == region.id

    with sessions() as session:
        stored = session.get_one(Device, device.id)
        assert stored.store.code == code and stored.kind == "till"
        assert stored.revoked_at is None
        assert stored.created_at.tzinfo is not None
        assert stored.created_at.utcoffset() == UTC.utcoffset(None)
        assert KEY_PATTERN.fullmatch(key)
        assert stored.key_prefix == parse_prefix(key)
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest() != key
        assert admin.device_for_key(session, key) == stored

        saved_user = session.get_one(User, user.id)
        assert saved_user.email == email.lower()
        assert saved_user.store_id == store.id
        assert saved_user.password_hash.startswith("scrypt$")
        assert verify_password("correct horse", saved_user.password_hash)
        assert session.get_one(User, head_office.id).store_id is None

        assert region_name in [r.name for r in admin.list_regions(session)]
        assert [s.code for s in admin.list_stores(session, region_name)] == sorted(
            [code, by_id.code]
        )
        assert [d.kind for d in admin.list_devices(session, code)] == ["till", "entrance"]
        assert (saved_user.email, code) in [(u.email, c) for u, c in admin.list_users(session)]


def test_admin_refuses_duplicates(sessions: sessionmaker[Session]) -> None:
    region_name, code, email = unique("Dup"), unique("DUP"), f"{unique('dup')}@example.com"
    with transaction(sessions) as session:
        admin.create_region(session, region_name)
        admin.create_store(session, region_name, code, "First")
        admin.create_user(session, email, "First", "admin", "long enough")

    cases: list[tuple[Callable[[Session], object], str]] = [
        (lambda s: admin.create_region(s, region_name), f"region '{region_name}' already exists"),
        (
            lambda s: admin.create_store(s, region_name, code, "Second"),
            f"store code '{code}' is already used by store 'First'",
        ),
        (
            lambda s: admin.create_user(s, email.upper(), "Second", "admin", "long enough"),
            f"a user with email '{email}' already exists",
        ),
    ]
    for action, message in cases:
        with pytest.raises(AdminError, match=re.escape(message)), transaction(sessions) as s:
            action(s)


def test_admin_refuses_unknown_references_and_bad_values(
    sessions: sessionmaker[Session],
) -> None:
    region_name, code = unique("Ref"), unique("REF")
    with transaction(sessions) as session:
        admin.create_region(session, region_name)
        admin.create_store(session, region_name, code, "Known")

    cases: list[tuple[Callable[[Session], object], str]] = [
        (
            lambda s: admin.create_store(s, "Atlantis", unique("X"), "x"),
            "unknown region 'Atlantis'",
        ),
        (lambda s: admin.create_store(s, 987654, unique("X"), "x"), "unknown region 987654"),
        (lambda s: admin.create_device(s, "NOPE", "till", "x"), "unknown store 'NOPE'"),
        (
            lambda s: admin.create_device(s, code, "kiosk", "x"),
            "unknown device kind 'kiosk': use one of till, entrance",
        ),
        (lambda s: admin.revoke_device(s, 987654), "unknown device id 987654"),
        (
            lambda s: admin.create_user(s, "a@example.com", "A", "owner", "long enough"),
            "unknown role 'owner'",
        ),
        (
            lambda s: admin.create_user(s, "a@example.com", "A", "store_manager", "long enough"),
            "users with role 'store_manager' need a store",
        ),
        (
            lambda s: admin.create_user(s, "a@example.com", "A", "admin", "long enough", code),
            "users with role 'admin' are not tied to a store",
        ),
        (
            lambda s: admin.create_user(
                s, "a@example.com", "A", "store_manager", "long enough", "NOPE"
            ),
            "unknown store 'NOPE'",
        ),
        (
            lambda s: admin.create_user(s, "a@example.com", "A", "admin", "short"),
            "password is too short",
        ),
        (
            lambda s: admin.create_user(s, "not-an-email", "A", "admin", "long enough"),
            "is not a valid address",
        ),
        (lambda s: admin.create_store(s, region_name, "a b", "x"), "store code 'a b' is not valid"),
        (lambda s: admin.create_region(s, "   "), "region name must not be empty"),
        (lambda s: admin.create_region(s, "x" * 101), "region name is too long"),
    ]
    for action, message in cases:
        with pytest.raises(AdminError, match=re.escape(message)), transaction(sessions) as s:
            action(s)


def test_device_keys_verify_and_revocation(sessions: sessionmaker[Session]) -> None:
    region_name, code = unique("Keys"), unique("KEY")
    with transaction(sessions) as session:
        admin.create_region(session, region_name)
        admin.create_store(session, region_name, code, "Keys")
        device, key = admin.create_device(session, code, "entrance", "Door")
        _other, other_key = admin.create_device(session, code, "till", "Till")

    assert verify_api_key(key, device.key_prefix, device.key_hash)
    assert not verify_api_key(other_key, device.key_prefix, device.key_hash)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert not verify_api_key(tampered, device.key_prefix, device.key_hash)
    assert not verify_api_key("ssk_short", device.key_prefix, device.key_hash)

    with sessions() as session:
        assert admin.device_for_key(session, tampered) is None
        assert admin.device_for_key(session, "garbage") is None

    with transaction(sessions) as session:
        revoked = admin.revoke_device(session, device.id)
    assert revoked.revoked_at is not None
    with sessions() as session:
        assert admin.device_for_key(session, key) is None
        assert admin.device_for_key(session, other_key) is not None
        assert [d.id for d in admin.list_devices(session, code, include_revoked=False)] == [
            _other.id
        ]
    with pytest.raises(AdminError, match="already revoked"), transaction(sessions) as session:
        admin.revoke_device(session, device.id)


# --- secrets (no database) -----------------------------------------------------------------


def test_api_keys_are_unique_and_parse() -> None:
    keys = [new_api_key() for _ in range(50)]
    assert len({key for key, _, _ in keys}) == len({prefix for _, prefix, _ in keys}) == 50
    for key, prefix, key_hash in keys:
        assert KEY_PATTERN.fullmatch(key)
        assert parse_prefix(key) == prefix
        assert key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert verify_api_key(key, prefix, key_hash)
    key, prefix, key_hash = keys[0]
    assert not verify_api_key(key, keys[1][1], key_hash)  # right hash, wrong prefix
    for malformed in ("", "ssk", key + "x", key[1:], key.replace("ssk_", "xyz_"), f" {key}"):
        assert parse_prefix(malformed) is None
        assert not verify_api_key(malformed, prefix, key_hash)


def test_password_hashing_round_trip() -> None:
    first, second = hash_password("pässwörd 123"), hash_password("pässwörd 123")
    assert first != second  # random salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("pässwörd 123", first) and verify_password("pässwörd 123", second)
    assert not verify_password("pässwörd 124", first)
    assert not verify_password("", first)
    assert not needs_rehash(first)
    for malformed in ("", "scrypt$", "bcrypt$1$2$3$AA==$AA==", first.replace("$8$", "$x$")):
        assert not verify_password("pässwörd 123", malformed)
    huge_n = first.replace("$16384$", f"${2**30}$")
    assert not verify_password("pässwörd 123", huge_n) and needs_rehash(huge_n)
    with pytest.raises(ValueError):
        hash_password("")


# --- the CLI, run as an operator would -------------------------------------------------------


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["STORESIGHT_CLOUD_DATABASE_URL"] = url
    return env


def _start(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run one command; several independent ones are better started with _start at once."""
    return _finish(_start(cwd, env, *args))


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _assert_fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (message, result.stdout, result.stderr)
    assert result.stderr.startswith("storesight-cloud: error: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    no_url = dict(os.environ)
    no_url.pop("STORESIGHT_CLOUD_DATABASE_URL", None)
    env = _env(url)
    # Independent commands start alongside the main sequence, to keep the test quick.
    fresh = tmp_path / "fresh.db"
    unmigrated = _start(
        tmp_path, env, "admin", "list", "stores", "--database-url", f"sqlite:///{fresh}"
    )

    migrated = _run(tmp_path, no_url, "migrate", "--database-url", url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"is at revision {head_revision()} (head)" in migrated.stdout
    assert not (tmp_path / "var").exists()  # the --database-url was used, not the default

    unknown = _start(
        tmp_path, env, "admin", "create-store", "--region", "Atlantis", "--code", "X",
        "--name", "X",
    )  # fmt: skip
    region = _run(tmp_path, env, "admin", "create-region", "North")
    assert region.returncode == 0, region.stderr
    store = _run(
        tmp_path, env, "admin", "create-store", "--region", "North", "--code", "LON-1",
        "--name", "London One",
    )  # fmt: skip
    assert store.returncode == 0, store.stderr
    device = _run(
        tmp_path, env, "admin", "create-device", "--store", "LON-1", "--kind", "till",
        "--name", "Till 1",
    )  # fmt: skip
    assert device.returncode == 0, device.stderr
    keys = KEY_PATTERN.findall(device.stdout)
    assert len(keys) == 1 and device.stdout.count(keys[0]) == 1
    key = keys[0]
    assert "shown only this once" in device.stdout
    assert key not in device.stderr  # never logged

    listed = _run(tmp_path, env, "admin", "list", "devices")
    assert listed.returncode == 0, listed.stderr
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            stored = session.scalars(select(Device)).one()
    finally:
        engine.dispose()
    assert verify_api_key(key, stored.key_prefix, stored.key_hash)
    assert "Till 1" in listed.stdout and stored.key_prefix in listed.stdout
    assert stored.key_hash not in listed.stdout + listed.stderr
    assert key not in listed.stdout + listed.stderr

    _assert_fails(_finish(unknown), "unknown region 'Atlantis'")
    _assert_fails(
        _finish(unmigrated), "has no StoreSight schema; run `storesight-cloud migrate` first"
    )
    assert not fresh.exists()


def test_cli_users_and_revocation_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    monkeypatch.setenv("STORESIGHT_CLOUD_DATABASE_URL", url)
    assert cli_main(["migrate"]) == 0
    assert cli_main(["admin", "create-region", "North"]) == 0
    assert cli_main(["admin", "create-region", "North"]) == 1
    assert "storesight-cloud: error: region 'North' already exists" in capsys.readouterr().err
    assert cli_main(["admin", "create-store", "--region", "1", "--code", "S1", "--name", "S"]) == 0
    device = ["admin", "create-device", "--store", "S1", "--name", "D"]
    assert cli_main([*device, "--kind", "door"]) == 1
    assert "storesight-cloud: error: unknown device kind 'door'" in capsys.readouterr().err
    assert cli_main([*device, "--kind", "entrance"]) == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO("a long password\n"))
    argv = ["admin", "create-user", "--email", "Boss@Example.com", "--name", "Boss"]
    assert cli_main([*argv, "--role", "store_manager", "--store", "S1", "--password-stdin"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long password\n"))
    assert cli_main([*argv, "--role", "admin", "--password-stdin"]) == 1
    assert "a user with email 'boss@example.com' already exists" in capsys.readouterr().err

    assert cli_main(["admin", "revoke-device", "--id", "1"]) == 0
    assert cli_main(["admin", "revoke-device", "--id", "1"]) == 1
    assert "storesight-cloud: error: device 1 ('D') was already revoked" in capsys.readouterr().err

    assert cli_main(["admin", "list", "users"]) == 0
    assert cli_main(["admin", "list", "devices"]) == 0
    out = capsys.readouterr().out
    assert "boss@example.com" in out and "store_manager" in out and "S1" in out
    assert "scrypt$" not in out

    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            user = session.scalars(select(User)).one()
            assert verify_password("a long password", user.password_hash)
            assert session.scalars(select(Device)).one().revoked_at is not None
    finally:
        engine.dispose()
