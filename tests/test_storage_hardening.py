"""Issue 13, storage: what a database error logs, what a deletion leaves behind (database
files, stored answers, index files) and what one bad stored row may do to the rollups."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.db.migrate import migration_engine, upgrade
from cloud_api.db.models import Customer, FaceSample, Receipt, RollupSales, Visit
from cloud_api.db.models import LineItem as LineItemRow
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.recognition import EngineSettings
from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.reports import rollups
from cloud_api.reports.common import as_date
from cloud_api.services.customers import purge
from cloud_api.services.recognizer import Recognizer, to_bytes
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)

NAME = "Zebediah Quuxworth"
VIP = "VIP-QX-99173"


def _store(session_url: str) -> tuple[int, int, int]:
    """(region, store, device) ids of a new one-store chain."""
    sessions = session_factory(make_engine(session_url))
    with transaction(sessions) as session:
        region = admin.create_region(session, "North")
        store = admin.create_store(session, "North", "N001", "North One")
        device, _ = admin.create_device(session, "N001", "till", "till 1")
        return region.id, store.id, device.id


def _receipt(
    store: int, device: int, key: str, customer: int | None, at: datetime, **response: object
) -> Receipt:
    return Receipt(
        store_id=store,
        device_id=device,
        customer_id=customer,
        idempotency_key=key,
        number=key,
        currency="EUR",
        total=Decimal("9.99"),
        scanned_at=at,
        response={"receipt_id": 0, **response},
    )


# ---- row 13: no SQL parameters in database errors -------------------------------------------


def test_database_errors_never_show_their_parameters(migrated_url: str) -> None:  # noqa: F811
    for engine in (make_engine(migrated_url), migration_engine(migrated_url)):
        with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
            connection.execute(
                text("INSERT INTO no_such_table (name, vip) VALUES (:name, :vip)"),
                {"name": NAME, "vip": VIP},
            )
        shown = str(raised.value)
        assert "no_such_table" in shown  # the SQL is there to debug with
        assert NAME not in shown and VIP not in shown
        engine.dispose()


# ---- row 14: a deleted companion leaves the stored answers ----------------------------------


def test_deleting_a_companion_scrubs_the_receipts_they_stood_by(
    migrated_url: str,  # noqa: F811
) -> None:
    _, store, device = _store(migrated_url)
    sessions = session_factory(make_engine(migrated_url))
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    with transaction(sessions) as session:
        payer = Customer(region_id=1, first_store_id=store)
        companion = Customer(region_id=1, first_store_id=store, name=NAME, vip_number=VIP)
        session.add_all([payer, companion])
        session.flush()
        card = {"status": "returning", "customer_id": payer.id}
        receipt = _receipt(
            store,
            device,
            "k-companion-1",
            payer.id,
            at,
            card=card,
            companions=[{"customer_id": companion.id, "status": "returning"}],
        )
        session.add(receipt)
        session.flush()
        session.add(
            Visit(
                customer_id=companion.id,
                store_id=store,
                device_id=device,
                kind="companion",
                receipt_id=receipt.id,
                at=at,
            )
        )
        gone, receipt_id, payer_id = companion.id, receipt.id, payer.id
    with transaction(sessions) as session:
        purge(session, [gone])
    with sessions() as session:
        stored = session.get(Receipt, receipt_id)
        assert stored is not None
        assert stored.response["companions"] == [{"customer_id": None, "status": "unidentified"}]
        assert stored.response["card"]["customer_id"] == payer_id  # the payer's card stays
        assert stored.customer_id == payer_id


# ---- rows 15-17: database files and index files after a delete ------------------------------


def _descriptor(seed: int) -> NDArray[np.float32]:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _add_samples(
    sessions: sessionmaker[Session], store: int, customer: int, vectors: list[NDArray[np.float32]]
) -> None:
    with transaction(sessions) as session:
        for vector in vectors:
            session.add(
                FaceSample(
                    customer_id=customer,
                    region_id=1,
                    store_id=store,
                    gender="unknown",
                    age_band=-1,
                    descriptor=to_bytes(vector),
                    quality=0.5,
                )
            )


def _bytes_of(paths: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.is_file())


def test_a_deleted_member_leaves_no_bytes_in_the_files(tmp_path: Path) -> None:
    """SQLite (secure_delete + a WAL checkpoint after the delete) and the Annoy files (a
    delete triggers a rebuild at once; files 0600; gone after a clean close)."""
    url = f"sqlite:///{tmp_path / 'db' / 'cloud.db'}"
    upgrade(url)
    _, store, _ = _store(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        member = Customer(region_id=1, first_store_id=store, name=NAME, vip_number=VIP)
        other = Customer(region_id=1, first_store_id=store)
        session.add_all([member, other])
        session.flush()
        member_id, other_id = member.id, other.id
    theirs = [_descriptor(i) for i in range(4)]
    _add_samples(sessions, store, member_id, theirs)
    _add_samples(sessions, store, other_id, [_descriptor(100 + i) for i in range(12)])

    index_dir = tmp_path / "index"
    recognizer = Recognizer(
        sessions,
        policy=DecisionPolicy(),
        index_dir=index_dir,
        settings=EngineSettings(exact_max_size=2),  # Annoy files even for a few samples
    )
    recognizer.load()
    recognizer.engine.rebuild()
    index_files = sorted(index_dir.glob("*.ann"))
    assert index_files, "the test needs Annoy files"
    for path in index_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(index_dir.stat().st_mode) == 0o700
    marker = to_bytes(theirs[0])
    assert marker in _bytes_of(index_files)

    with transaction(sessions) as session:
        purge(session, [member_id])
    recognizer.forget(member_id)
    recognizer.maintain(max_age_s=1e9)  # no period passed: the deletion alone rebuilds

    db_files = sorted((tmp_path / "db").iterdir())
    everything = _bytes_of(db_files)
    for secret in (NAME.encode(), VIP.encode(), *(to_bytes(v) for v in theirs)):
        assert secret not in everything
    index_files = sorted(index_dir.glob("*.ann"))
    assert index_files
    assert marker not in _bytes_of(index_files)
    for path in index_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    recognizer.close(remove_files=True)
    assert not list(index_dir.glob("*.ann*"))
    engine.dispose()


# ---- the `database is locked` item ---------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from cloud_api import admin
from cloud_api.cli import main
from cloud_api.db.session import make_engine, session_factory, transaction
url, name, start, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
sessions = session_factory(make_engine(url))
while not start.exists():
    pass
for i in range(count):
    # what `admin create-device` does (read the store, then write), as fast as it goes
    with transaction(sessions) as session:
        admin.create_device(session, "N001", "till", f"{name}-{i}")
for i in range(3):  # and the command itself
    code = main(["admin", "create-device", "--database-url", url, "--store", "N001",
                 "--kind", "till", "--name", f"{name}-cli-{i}"])
    if code != 0:
        sys.exit(code)
"""
LOOPS = 200


def test_two_processes_writing_one_sqlite_file_never_see_database_is_locked(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    _store(url)
    start = tmp_path / "go"
    env = {**os.environ, "STORESIGHT_LOG_LEVEL": "WARNING"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, name, str(start), str(LOOPS)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    start.touch()
    results = [(w.wait(timeout=300), w.stderr.read() if w.stderr else "") for w in writers]
    for code, err in results:
        assert "database is locked" not in err
        assert code == 0, err
    with session_factory(make_engine(url))() as session:
        assert session.scalar(text("SELECT count(*) FROM devices")) == 1 + 2 * (LOOPS + 3)


# ---- section 2: one bad stored row and the rollups -----------------------------------------


def test_a_receipt_at_the_end_of_time_is_quarantined_and_the_rest_refreshed(
    migrated_url: str,  # noqa: F811
) -> None:
    _, store, device = _store(migrated_url)
    sessions = session_factory(make_engine(migrated_url))
    rollups.ensure_fresh(sessions)
    normal = datetime(2024, 5, 1, 12, tzinfo=UTC)
    edge = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    with transaction(sessions) as session:
        for key, at in (("k-edge", edge), ("k-normal", normal)):
            receipt = _receipt(store, device, key, None, at)
            session.add(receipt)
            session.flush()
            session.add(
                LineItemRow(
                    receipt_id=receipt.id,
                    store_id=store,
                    customer_id=None,
                    sku=f"SKU-{key}",
                    name="thing",
                    category="things",
                    brand="b",
                    quantity=1,
                    unit_price=Decimal("9.99"),
                    sold_at=at,
                )
            )
    rollups.ensure_fresh(sessions)  # must not raise
    rollups.ensure_fresh(sessions)  # nor again
    with sessions() as session:
        days = {as_date(d) for d in session.scalars(select(RollupSales.day).distinct()).all()}
        assert date(2024, 5, 1) in days
    # a full rebuild survives it too
    with transaction(sessions) as session:
        rollups.rebuild(session)
    with sessions() as session:
        assert (session.scalar(select(func.count()).select_from(RollupSales)) or 0) >= 1


def test_postgres_engines_carry_a_statement_timeout(migrated_url: str) -> None:  # noqa: F811
    if make_url(migrated_url).get_backend_name() != "postgresql":
        engine = make_engine(migrated_url, statement_timeout_s=7)
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 7000
            assert connection.execute(text("PRAGMA secure_delete")).scalar() == 1
        engine.dispose()
        return
    engine = make_engine(migrated_url, statement_timeout_s=7)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "7s"
    engine.dispose()
