"""The database-backed recogniser: loading, syncing, deletions and background rebuilds."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.db.models import Customer, CustomerDeletion, FaceSample
from cloud_api.db.session import make_engine, session_factory
from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.services.recognizer import QueryContext, Recognizer, to_bytes
from contract import Embedding
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)


def _unit(rng: np.random.Generator) -> NDArray[np.float32]:
    v = rng.normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _customer_with_samples(
    sessions: sessionmaker[Session],
    store_id: int,
    region_id: int,
    vectors: list[NDArray[np.float32]],
) -> int:
    with sessions() as session, session.begin():
        customer = Customer(
            region_id=region_id, first_store_id=store_id, visit_count=1, lifetime_spend=Decimal(0)
        )
        session.add(customer)
        session.flush()
        for v in vectors:
            session.add(
                FaceSample(
                    customer_id=customer.id,
                    region_id=region_id,
                    store_id=store_id,
                    gender="unknown",
                    age_band=-1,
                    descriptor=to_bytes(v),
                    quality=0.9,
                )
            )
        return customer.id


@pytest.mark.parametrize("rebuild_first", [False, True])
def test_sync_finds_new_faces_and_honours_deletions(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    rebuild_first: bool,
) -> None:
    sessions = session_factory(make_engine(migrated_url))
    with sessions() as session, session.begin():
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W001", "West One")
        store_id, region_id = store.id, store.region_id
    rng = np.random.default_rng(1)
    alice, bob = _unit(rng), _unit(rng)
    alice_id = _customer_with_samples(sessions, store_id, region_id, [alice])

    recognizer = Recognizer(sessions, policy=DecisionPolicy(), index_dir=tmp_path / "index")
    try:
        assert recognizer.load() == 1
        if rebuild_first:
            recognizer.maintain(max_age_s=0.0)  # small exact partitions: nothing to fold in
            assert recognizer.engine.stats()["rebuilds"] == 0
            recognizer.engine.rebuild()
            assert recognizer.engine.stats()["rebuilds"] == 1
        context = QueryContext(
            region_id=region_id, store_id=store_id, gender="unknown", age_band=-1
        )
        probe = Embedding(vector=[float(x) for x in alice + 0.01], quality=0.9)
        assert _identify(recognizer, [probe], context) == alice_id

        bob_id = _customer_with_samples(sessions, store_id, region_id, [bob])
        bob_probe = Embedding(vector=[float(x) for x in bob], quality=0.9)
        assert _identify(recognizer, [bob_probe], context) is None  # not synced yet
        assert recognizer.sync() == (1, 0)
        assert _identify(recognizer, [bob_probe], context) == bob_id
        assert recognizer.sync() == (0, 0)  # nothing read twice

        # another process deleted Alice: the tombstone reaches this one on the next sync
        with sessions() as session, session.begin():
            session.add(CustomerDeletion(customer_id=alice_id))
        assert recognizer.sync() == (0, 1)
        assert _identify(recognizer, [probe], context) is None
        # a late sample of the deleted customer does not stop others from being indexed
        carol = _unit(rng)
        _customer_with_samples(sessions, store_id, region_id, [carol])
        with sessions() as session, session.begin():
            session.add(
                FaceSample(
                    customer_id=bob_id,
                    region_id=region_id,
                    store_id=store_id,
                    gender="unknown",
                    age_band=-1,
                    descriptor=to_bytes(bob),
                    quality=0.9,
                )
            )
        recognizer.forget(bob_id)
        added, _ = recognizer.sync()
        assert added == 2
        carol_probe = Embedding(vector=[float(x) for x in carol], quality=0.9)
        assert _identify(recognizer, [carol_probe], context) is not None
        assert _identify(recognizer, [bob_probe], context) is None
    finally:
        recognizer.close()


def _identify(recognizer: Recognizer, probes: list[Embedding], context: QueryContext) -> int | None:
    """The customer the probes are accepted as (the returning target), or None."""
    found = recognizer.decide(probes, context).returning
    return None if found is None else found.customer_id


def _sample(
    customer_id: int, store_id: int, region_id: int, vector: NDArray[np.float32], **kw: int
) -> FaceSample:
    return FaceSample(
        customer_id=customer_id,
        region_id=region_id,
        store_id=store_id,
        gender="unknown",
        age_band=-1,
        descriptor=to_bytes(vector),
        quality=0.9,
        **kw,
    )


def test_sync_reads_a_sample_committed_below_the_newest_id_read(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Ids commit out of order (concurrent transactions): a gap below the newest id read is
    read when its row arrives."""
    sessions = session_factory(make_engine(migrated_url))
    with sessions() as session, session.begin():
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W001", "West One")
        store_id, region_id = store.id, store.region_id
    rng = np.random.default_rng(2)
    _customer_with_samples(sessions, store_id, region_id, [_unit(rng)])
    recognizer = Recognizer(sessions, policy=DecisionPolicy(), index_dir=tmp_path / "index")
    try:
        assert recognizer.load() == 1
        with sessions() as session:
            newest = max(session.scalars(select(FaceSample.id)).all())
        late, early = _unit(rng), _unit(rng)
        second = _customer_with_samples(sessions, store_id, region_id, [])
        third = _customer_with_samples(sessions, store_id, region_id, [])
        with sessions() as session, session.begin():
            session.add(_sample(second, store_id, region_id, early, id=newest + 2))
        assert recognizer.sync() == (1, 0)
        with sessions() as session, session.begin():  # the transaction that took newest + 1
            session.add(_sample(third, store_id, region_id, late, id=newest + 1))
        assert recognizer.sync() == (1, 0)
        assert recognizer.sync() == (0, 0)
        context = QueryContext(
            region_id=region_id, store_id=store_id, gender="unknown", age_band=-1
        )
        probe = Embedding(vector=[float(x) for x in late], quality=0.9)
        assert _identify(recognizer, [probe], context) == third
    finally:
        recognizer.close()


class _CountingLock:
    """A lock that says how many threads wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self.waiting = 0

    def __enter__(self) -> None:
        with self._guard:
            self.waiting += 1
        self._lock.acquire()
        with self._guard:
            self.waiting -= 1

    def __exit__(self, *_: object) -> None:
        self._lock.release()


def test_threads_asking_during_a_sync_share_the_next_one(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A sync that started after a call covers it: request threads that queue behind a
    running sync are served by one more sync, not one each; and each sees every sample
    committed before it asked."""
    sessions = session_factory(make_engine(migrated_url))
    with sessions() as session, session.begin():
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W001", "West One")
        store_id, region_id = store.id, store.region_id
    rng = np.random.default_rng(3)
    recognizer = Recognizer(sessions, policy=DecisionPolicy(), index_dir=tmp_path / "index")
    try:
        recognizer.load()
        entered, release = threading.Event(), threading.Event()
        opened: list[int] = []

        def factory() -> Session:
            opened.append(1)
            if len(opened) == 1:  # the first sync stalls in the database
                entered.set()
                assert release.wait(30)
            return sessions()

        lock = _CountingLock()
        recognizer._factory = factory  # type: ignore[assignment]
        recognizer._sync_lock = lock  # type: ignore[assignment]
        results: list[tuple[int, int]] = []
        first = threading.Thread(target=lambda: results.append(recognizer.sync()))
        first.start()
        assert entered.wait(30)
        vector = _unit(rng)
        customer = _customer_with_samples(sessions, store_id, region_id, [vector])
        queued = [
            threading.Thread(target=lambda: results.append(recognizer.sync())) for _ in range(3)
        ]
        for thread in queued:
            thread.start()
        deadline = time.monotonic() + 30
        while lock.waiting < 3:
            assert time.monotonic() < deadline, "the threads did not queue"
            time.sleep(0.01)
        release.set()
        for thread in [first, *queued]:
            thread.join(30)
        assert len(opened) == 2  # the stalled sync, and one for the three that queued
        assert sorted(results) == [(0, 0), (0, 0), (0, 0), (1, 0)]
        assert recognizer.knows(customer)
    finally:
        recognizer.close()


def test_a_customer_enrolled_after_the_newest_one_was_deleted_is_found(
    migrated_url: str,  # noqa: F811
) -> None:
    """Deleting the newest customer must not make the next samples invisible (on SQLite a
    table without AUTOINCREMENT hands the deleted rows' ids out again)."""
    from cloud_api.services.customers import purge

    sessions = session_factory(make_engine(migrated_url))
    with sessions() as session, session.begin():
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W001", "West One")
        store_id, region_id = store.id, store.region_id
    rng = np.random.default_rng(3)
    recognizer = Recognizer(sessions, policy=DecisionPolicy(), index_dir=None)
    try:
        recognizer.load()
        gone = _customer_with_samples(sessions, store_id, region_id, [_unit(rng)])
        recognizer.sync()
        with sessions() as session, session.begin():
            purge(session, [gone])
        recognizer.forget(gone)
        face = _unit(rng)
        newcomer = _customer_with_samples(sessions, store_id, region_id, [face])
        assert recognizer.sync() == (1, 1)
        context = QueryContext(
            region_id=region_id, store_id=store_id, gender="unknown", age_band=-1
        )
        probe = Embedding(vector=[float(x) for x in face], quality=0.9)
        assert _identify(recognizer, [probe, probe], context) == newcomer
    finally:
        recognizer.close()


def test_catch_up_reads_only_when_a_live_feed_announced_something(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The request path's sync: with a live change feed it asks the database nothing until
    the feed announces samples or deletions; without one (SQLite, a lost connection) it
    reads every time."""
    from sqlalchemy import event

    engine = make_engine(migrated_url)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W001", "West One")
        store_id, region_id = store.id, store.region_id
    rng = np.random.default_rng(2)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    recognizer = Recognizer(sessions, policy=DecisionPolicy(), index_dir=tmp_path / "index")
    live = {"now": True}
    try:
        recognizer.load()
        recognizer.follow(lambda: live["now"])
        assert recognizer.catch_up() == (0, 0)  # the first call reads: no sync began yet
        statements.clear()
        recognizer.sync()
        assert statements, "sync always reads"

        statements.clear()
        alice = _customer_with_samples(sessions, store_id, region_id, [_unit(rng)])
        statements.clear()
        assert recognizer.catch_up() == (0, 0)  # committed, but not announced yet
        assert statements == []
        assert not recognizer.knows(alice)

        recognizer.heard()  # the feed delivers the writer's notification
        assert recognizer.catch_up() == (1, 0)
        assert recognizer.knows(alice)
        statements.clear()
        assert recognizer.catch_up() == (0, 0)
        assert statements == []

        live["now"] = False  # the LISTEN connection is lost: every call reads again
        bob = _customer_with_samples(sessions, store_id, region_id, [_unit(rng)])
        statements.clear()
        assert recognizer.catch_up() == (1, 0)
        assert statements
        assert recognizer.knows(bob)
    finally:
        recognizer.close()
