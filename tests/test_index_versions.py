"""Index versions: built once by the directory's builder, mapped by every other process.

A worker starts from a published version without building anything, finds customers enrolled
after it through its exact buffers, moves to a newer version without a restart, and never
finds a deleted customer, whichever side of a version's mark the deletion falls on. Old
versions are removed once superseded. On SQLite and PostgreSQL, with the builder in this
process (its own `Recognizer`, as an API process would be) and as the real
`storesight-cloud indexer` process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.api.app import check_index_versions
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.recognition import EngineSettings
from cloud_api.recognition.index_versions import (
    BUILD_LOCK,
    MANIFEST,
    IndexDirectory,
    Manifest,
    version_name,
)
from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.recognition.templates import Template, TemplateTable
from cloud_api.services.customers import purge
from cloud_api.services.recognizer import QueryContext, Recognizer, to_bytes
from cloud_api.settings import CloudSettings
from contract import Embedding
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.test_cloud_recognizer import _customer_with_samples, _identify, _unit

# Exact search up to 4 samples: every store of 6 samples, and everyone, get Annoy indexes.
SMALL = {"exact_max_size": 4, "n_trees": 4}


@pytest.fixture
def chain(migrated_url: str) -> Iterator[Chain]:  # noqa: F811
    engine = make_engine(migrated_url)
    try:
        yield Chain(migrated_url, session_factory(engine))
    finally:
        engine.dispose()


class Chain:
    """Two stores in one region, two customers of three samples at each."""

    def __init__(self, url: str, sessions: sessionmaker[Session]) -> None:
        self.url = url
        self.sessions = sessions
        with transaction(sessions) as session:
            admin.create_region(session, "West")
            one = admin.create_store(session, "West", "W001", "West One")
            two = admin.create_store(session, "West", "W002", "West Two")
            self.region, self.stores = one.region_id, (one.id, two.id)
        self.rng = np.random.default_rng(7)
        self.faces: dict[int, NDArray[np.float32]] = {}
        self.samples: dict[int, list[NDArray[np.float32]]] = {}
        self.home: dict[int, int] = {}

    def enrol(self, store: int, samples: int = 3) -> int:
        face = _unit(self.rng)
        vectors = [_near(face, self.rng) for _ in range(samples)]
        customer = _customer_with_samples(self.sessions, store, self.region, vectors)
        self.faces[customer] = face
        self.samples[customer] = vectors
        self.home[customer] = store
        return customer

    def forget(self, customer: int) -> None:
        """Delete as the API does: rows gone, a tombstone for every process."""
        with transaction(self.sessions) as session:
            purge(session, [customer])

    def found(self, recognizer: Recognizer, customer: int) -> int | None:
        """Whom `recognizer` takes the customer's face for, at their home store."""
        context = QueryContext(self.region, self.home[customer], "unknown", -1)
        probe = Embedding(
            vector=[float(x) for x in _near(self.faces[customer], self.rng)], quality=0.9
        )
        return _identify(recognizer, [probe, probe], context)

    def in_files(self, customer: int, root: Path) -> bool:
        """Whether any of the customer's descriptors is in a file under `root`."""
        stored = _index_bytes(root)
        return any(to_bytes(v) in stored for v in self.samples[customer])


def _near(face: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    vector = face + rng.normal(0, 0.01, face.shape[0]).astype(np.float32)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _recognizer(chain: Chain, root: Path, **engine: object) -> Recognizer:
    """A recogniser on the index directory `root`, as an API process has (its own state,
    its own locks)."""
    settings = EngineSettings.model_validate({**SMALL, **engine})
    directory = IndexDirectory(root, prefault=settings.prefault)
    directory.enter()
    return Recognizer(
        chain.sessions,
        policy=DecisionPolicy(),
        index_dir=None,
        settings=settings,
        versions=directory,
    )


def _close(*recognizers: Recognizer) -> None:
    for recognizer in recognizers:
        recognizer.close()
        assert recognizer.versions is not None
        recognizer.versions.leave(remove=True)


def _manifest(root: Path, number: int) -> Manifest:
    raw = (root / version_name(number) / MANIFEST).read_bytes()
    return Manifest.model_validate_json(raw, strict=False)


def _index_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize("region_level", ["filter", "index"])
def test_a_worker_maps_a_version_follows_newer_ones_and_never_finds_the_deleted(
    chain: Chain, tmp_path: Path, region_level: str
) -> None:
    root = tmp_path / "index"
    alice, bob = chain.enrol(chain.stores[0]), chain.enrol(chain.stores[0])
    dave, erin = chain.enrol(chain.stores[1]), chain.enrol(chain.stores[1])

    builder = _recognizer(chain, root, region_level=region_level)
    worker = _recognizer(chain, root, region_level=region_level)
    try:
        assert builder.versions is not None and worker.versions is not None
        assert builder.versions.try_build()
        assert not worker.versions.try_build(), "one builder per index directory"
        assert builder.load() == 12
        first = builder.publish()
        assert first.version == 1 and first.samples == 12 and first.customers == 4
        assert first.annoy_built == (4 if region_level == "index" else 3)  # 2 stores, everyone
        assert builder.engine.stats()["annoy_builds"] == first.annoy_built
        linked_from = (root / version_name(1) / f"store-{chain.stores[1]}.ann").stat().st_ino

        # The worker starts from version 1: nothing read from the database, nothing built.
        assert worker.load() == 0
        stats = worker.engine.stats()
        assert worker.version == 1 and stats["index_version"] == 1
        assert stats["annoy_builds"] == 0 and stats["rebuilds"] == 0
        assert stats["samples"] == 12 and stats["unpublished"] == 0
        assert stats["annoy_partitions"] == first.annoy_built and stats["mapped_bytes"] > 0
        for customer in (alice, bob, dave, erin):
            assert chain.found(worker, customer) == customer

        # A customer enrolled after the version: found through the exact buffer at once.
        carol = chain.enrol(chain.stores[0])
        assert worker.sync() == (3, 0)
        assert worker.engine.stats()["unpublished"] == 3
        assert chain.found(worker, carol) == carol
        # Bob is deleted: gone for the worker from its next sync, on top of version 1.
        chain.forget(bob)
        assert worker.sync() == (0, 1)
        assert chain.found(worker, bob) is None

        # The builder learns of both; the deletion makes a version due at once.
        builder.sync()
        assert builder.publish_due(max_age_s=1e9) == "deletions"
        builder.maintain(max_age_s=1e9)
        assert builder.versions.newest() == 2 and builder.version == 2
        second = _manifest(root, 2)
        assert second.samples == 12 and second.customers == 4  # carol in, bob out
        assert second.removed_customers == 1
        assert (second.annoy_linked, second.annoy_built) == (1, first.annoy_built - 1)
        assert worker.version == 1, "the worker has not looked yet"
        assert chain.found(worker, bob) is None

        # The worker moves to version 2 without a restart; carol's rows leave its buffer.
        assert worker.refresh()
        stats = worker.engine.stats()
        assert worker.version == 2 and stats["unpublished"] == 0 and stats["samples"] == 12
        assert stats["annoy_builds"] == 0
        assert chain.found(worker, carol) == carol
        assert chain.found(worker, bob) is None
        assert not worker.refresh(), "nothing newer"

        # Version 1 is gone; bob's descriptors are in no file; the unchanged store's index
        # was taken over by a hard link, not built again.
        assert builder.versions.versions() == [2]
        assert chain.in_files(carol, root) and not chain.in_files(bob, root)
        assert builder.publish_due(max_age_s=1e9) is None
        kept = root / version_name(2) / f"store-{chain.stores[1]}.ann"
        assert kept.stat().st_ino == linked_from

        # A deletion after version 2's mark, seen by a worker starting only now: applied
        # before it serves, although version 2 still holds the rows.
        chain.forget(alice)
        late = _recognizer(chain, root, region_level=region_level)
        try:
            assert late.load() == 0
            assert late.version == 2 and late.engine.stats()["annoy_builds"] == 0
            assert chain.found(late, alice) is None
            assert chain.found(late, dave) == dave
        finally:
            _close(late)
        worker.sync()
        assert chain.found(worker, alice) is None
    finally:
        _close(worker, builder)
    assert not list(root.iterdir()), "the last process out removes the versions"


def test_another_process_takes_over_building_when_the_builder_stops(
    chain: Chain, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    settings = CloudSettings(database_url=chain.url, index_dir=root, index_builder="serve")
    alice = chain.enrol(chain.stores[0], samples=6)
    builder, worker = _recognizer(chain, root), _recognizer(chain, root)
    try:
        assert builder.versions is not None and worker.versions is not None
        builder.versions.try_build()
        builder.load()
        builder.publish()
        worker.load()
        check_index_versions(worker, settings)
        assert not worker.versions.building

        # The builder stops; the worker still uses the directory, so the version stays.
        builder.close()
        assert not builder.versions.leave(remove=True)
        assert worker.versions.versions() == [1]
        check_index_versions(worker, settings)
        assert worker.versions.building, "the next process took the build lock"

        bert = chain.enrol(chain.stores[1])
        worker.sync()
        assert worker.publish_due(max_age_s=0.0) == "age"
        worker.maintain(max_age_s=0.0)
        assert worker.version == 2 and worker.published == 1
        assert worker.engine.stats()["unpublished"] == 0
        assert chain.found(worker, alice) == alice and chain.found(worker, bert) == bert
    finally:
        _close(worker)
    assert not list(root.iterdir())


def test_a_version_built_with_other_index_settings_is_not_mapped(
    chain: Chain, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    alice = chain.enrol(chain.stores[0], samples=6)
    builder = _recognizer(chain, root, n_trees=4)
    other = _recognizer(chain, root, n_trees=8)
    try:
        assert builder.versions is not None
        builder.versions.try_build()
        builder.load()
        builder.publish()
        assert other.load() == 6, "read from the database instead"
        assert other.version == 0
        assert chain.found(other, alice) == alice
    finally:
        _close(other, builder)


def test_an_interrupted_build_leaves_nothing_a_reader_maps(chain: Chain, tmp_path: Path) -> None:
    root = tmp_path / "index"
    chain.enrol(chain.stores[0], samples=6)
    builder = _recognizer(chain, root)
    try:
        assert builder.versions is not None
        builder.versions.try_build()
        builder.load()
        builder.publish()
        writer = builder.versions.begin()  # a build that never finished (its process died)
        (writer.path / "rows.vectors.npy").write_bytes(b"half")
        assert builder.versions.versions() == [1]
        reader = _recognizer(chain, root)
        try:
            reader.load()
            assert reader.version == 1
        finally:
            _close(reader)
    finally:
        builder.close()
        assert builder.versions is not None
        builder.versions.leave(remove=False)
    # the next builder clears what the interrupted one left
    directory = IndexDirectory(root)
    directory.enter()
    try:
        assert directory.try_build()
        assert sorted(p.name for p in root.iterdir()) == sorted(
            [version_name(1), BUILD_LOCK, "in-use.lock"]
        )
    finally:
        directory.leave(remove=True)


def test_a_damaged_or_half_removed_version_is_skipped_then_cleared(
    chain: Chain, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    alice = chain.enrol(chain.stores[0], samples=6)
    first = _recognizer(chain, root)
    assert first.versions is not None
    first.versions.try_build()
    first.load()
    first.publish()
    first.close()
    first.versions.leave(remove=False)  # killed, say: version 1 stays
    (root / version_name(1) / "rows.vectors.npy").unlink()  # a file lost
    (root / version_name(7)).mkdir()  # a removal interrupted after the manifest went

    second = _recognizer(chain, root)
    try:
        assert second.versions is not None
        assert second.versions.try_build()
        assert not (root / version_name(7)).exists()
        assert second.load() == 6, "the damaged version skipped: every sample read instead"
        assert second.publish_due(max_age_s=1e9) == "no version"
        second.maintain(max_age_s=1e9)
        assert second.version == 2 and second.versions.versions() == [2]
        assert chain.found(second, alice) == alice
    finally:
        _close(second)


# ---- the real indexer process -----------------------------------------------------------


@contextmanager
def _indexer_process(url: str, root: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_INDEX_DIR": str(root),
        "STORESIGHT_CLOUD_INDEX_BUILDER": "indexer",
        "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
        "STORESIGHT_CLOUD_SYNC_INTERVAL_S": "0.2",
        "STORESIGHT_CLOUD_REBUILD_INTERVAL_S": "0.5",
        "STORESIGHT_CLOUD_ENGINE__EXACT_MAX_SIZE": str(SMALL["exact_max_size"]),
        "STORESIGHT_CLOUD_ENGINE__N_TREES": str(SMALL["n_trees"]),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cloud_api.cli", "indexer"], env=env, stderr=out
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _wait_for(what: str, done: Callable[[], bool], log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s; indexer log:\n{log.read_text()}")
        time.sleep(0.1)


def test_the_indexer_process_publishes_and_a_worker_follows_it(
    chain: Chain, tmp_path: Path
) -> None:
    root = tmp_path / "index"
    log = tmp_path / "indexer.log"
    alice, bob = chain.enrol(chain.stores[0]), chain.enrol(chain.stores[1], samples=6)
    watcher = IndexDirectory(root)
    with _indexer_process(chain.url, root, log) as indexer:
        _wait_for("a first version", lambda: watcher.newest() is not None, log)
        worker = _recognizer(chain, root)
        try:
            assert worker.versions is not None
            assert not worker.versions.try_build(), "the indexer holds the build lock"
            assert worker.load() == 0
            assert worker.version >= 1
            assert worker.engine.stats()["annoy_builds"] == 0
            assert chain.found(worker, alice) == alice

            carol = chain.enrol(chain.stores[0])
            worker.sync()
            assert chain.found(worker, carol) == carol  # the buffer, before any version has her
            chain.forget(bob)
            worker.sync()
            assert chain.found(worker, bob) is None
            mapped = worker.version

            def caught_up() -> bool:
                worker.refresh()
                return worker.version > mapped and worker.engine.stats()["unpublished"] == 0

            _wait_for("a newer version with carol, mapped without a restart", caught_up, log)
            assert chain.found(worker, carol) == carol
            assert chain.found(worker, bob) is None
            assert worker.engine.stats()["annoy_builds"] == 0
            _wait_for(
                "bob's descriptors out of the files", lambda: not chain.in_files(bob, root), log
            )
            _wait_for("old versions removed", lambda: len(watcher.versions()) == 1, log)

            indexer.send_signal(signal.SIGTERM)
            assert indexer.wait(timeout=30) == 0, log.read_text()
            assert watcher.versions(), "kept while the worker still uses the directory"
            published = log.read_text().count("index_version_published")
            assert published == watcher.newest(), "every version built once, by the indexer"
        finally:
            _close(worker)
    assert not watcher.versions()


# ---- the template table ---------------------------------------------------------------------


def test_a_template_table_merged_with_changes_equals_one_built_from_scratch() -> None:
    rng = np.random.default_rng(3)
    dim, regions = 4, {10: 1, 11: 1, 20: 2}

    def template() -> Template:
        stores = {int(s) for s in rng.choice(list(regions), rng.integers(1, 3), replace=False)}
        return Template(rng.normal(size=dim), float(rng.uniform(1, 5)), stores)

    base = {int(c): template() for c in rng.choice(1000, 40, replace=False)}
    table = TemplateTable.empty(dim).merged(base, ())
    assert table.customer_ids.tolist() == sorted(base)
    changed = {c: template() for c in [*list(base)[:5], 2000, 2001]}  # 5 changed, 2 new
    gone = {*list(base)[5:9], 2001, 5555}  # 4 of the table's, a new one, an unknown one
    merged = table.merged(changed, gone)

    expected = {c: t for c, t in {**base, **changed}.items() if c not in gone}
    assert merged.customer_ids.tolist() == sorted(expected)
    for row, customer in enumerate(merged.customer_ids.tolist()):
        assert np.allclose(merged.vector(row), expected[customer].vector())
        assert set(merged.stores_of(row)) == expected[customer].stores
    count, per_store, per_region = merged.counts(regions, {list(expected)[0]})
    alive = {c: t for c, t in expected.items() if c != list(expected)[0]}
    assert count == len(alive)
    assert per_store == {
        s: sum(s in t.stores for t in alive.values())
        for s in regions
        if any(s in t.stores for t in alive.values())
    }
    by_region = {
        r: sum(any(regions[s] == r for s in t.stores) for t in alive.values()) for r in (1, 2)
    }
    assert per_region == {r: n for r, n in by_region.items() if n}


def test_a_mapped_version_decides_as_the_process_that_read_every_sample(
    chain: Chain, tmp_path: Path
) -> None:
    """Same candidates, levels, customer counts and scores from the version's indexes and
    template table as from a process holding every sample itself."""
    for store in chain.stores * 4:
        chain.enrol(store)
    builder = _recognizer(chain, tmp_path / "index")
    worker = _recognizer(chain, tmp_path / "index", prefault=True)
    alone = Recognizer(  # reads every sample, builds nothing
        chain.sessions,
        policy=DecisionPolicy(),
        index_dir=None,
        settings=EngineSettings.model_validate(SMALL),
    )
    try:
        assert builder.versions is not None
        builder.versions.try_build()
        builder.load()
        builder.publish()
        unpublished = chain.enrol(chain.stores[1])  # after the version: the worker's buffer
        assert worker.load() == 3 and worker.version == 1
        assert alone.load() == 27
        for customer in chain.faces:
            for store in chain.stores:
                probe = Embedding(
                    vector=[float(x) for x in _near(chain.faces[customer], chain.rng)], quality=0.9
                )
                context = QueryContext(chain.region, store, "unknown", -1)
                got, want = worker.decide([probe], context), alone.decide([probe], context)
                for mine, theirs in ((got.returning, want.returning), (got.nearest, want.nearest)):
                    assert (mine is None) == (theirs is None)
                    if mine is not None and theirs is not None:
                        assert (mine.customer_id, mine.level, mine.searched) == (
                            theirs.customer_id,
                            theirs.level,
                            theirs.searched,
                        )
                        assert mine.score == pytest.approx(theirs.score, abs=1e-9)
        assert chain.found(worker, unpublished) == unpublished
    finally:
        _close(worker, builder)
        alone.close()
