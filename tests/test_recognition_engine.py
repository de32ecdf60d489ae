"""The recognition engine on synthetic clustered descriptors, with real Annoy indexes."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from annoy import AnnoyIndex
from numpy.typing import NDArray
from pydantic import ValidationError

from cloud_api.recognition import (
    EngineSettings,
    Match,
    RecognitionEngine,
    SampleMeta,
    age_band,
)

DIM = 128
THRESHOLD = 0.443
# Two regions of two stores; 12 customers per store, 6 samples each.
STORES = {10: 1, 11: 1, 20: 2, 21: 2}
PER_STORE = 12
SAMPLES = 6
# Exact search only up to 40 samples, so every store, region and the global partition gets an
# Annoy index at a rebuild.
ANNOY_EVERYWHERE = EngineSettings(n_trees=8, exact_max_size=40)


def annoy_everywhere(**changes: object) -> EngineSettings:
    return EngineSettings.model_validate({**ANNOY_EVERYWHERE.model_dump(), **changes})


@dataclass
class World:
    """Customers with a centre each, and their enrolled samples."""

    rng: np.random.Generator
    mean: NDArray[np.float32]
    centres: dict[int, NDArray[np.float32]]
    home: dict[int, int]  # customer -> store

    def centre(self) -> NDArray[np.float32]:
        # Between centres ~0.85 apart, like different people in dlib's space.
        return (self.mean + self.rng.normal(0, 0.052, DIM)).astype(np.float32)

    def sample(self, customer: int) -> NDArray[np.float32]:
        # Within a customer ~0.3 apart, and ~0.21 from the centre.
        noise = self.rng.normal(0, 0.0185, DIM)
        return (self.centres[customer] + noise).astype(np.float32)

    def meta(self, customer: int, store: int | None = None) -> SampleMeta:
        store = self.home[customer] if store is None else store
        return SampleMeta(customer, STORES[store], store, "female", age_band(35))


@pytest.fixture
def world() -> World:
    rng = np.random.default_rng(7)
    mean = rng.normal(0, 1, DIM).astype(np.float32)
    mean *= 0.7 / np.linalg.norm(mean)
    world = World(rng, mean, {}, {})
    customer = 0
    for store in STORES:
        for _ in range(PER_STORE):
            world.centres[customer] = world.centre()
            world.home[customer] = store
            customer += 1
    return world


def load(engine: RecognitionEngine, world: World) -> int:
    """Enrol every customer of `world`; the next free sample id."""
    ids: list[int] = []
    vectors: list[NDArray[np.float32]] = []
    metas: list[SampleMeta] = []
    for customer in world.centres:
        for _ in range(SAMPLES):
            ids.append(len(ids))
            vectors.append(world.sample(customer))
            metas.append(world.meta(customer))
    engine.add_many(ids, np.stack(vectors), metas)
    return len(ids)


def identify(
    engine: RecognitionEngine,
    vector: NDArray[np.float32],
    store: int,
    *,
    gender: str = "female",
    band: int = 2,
) -> Match | None:
    return engine.identify(
        vector,
        region_id=STORES[store],
        store_id=store,
        gender=gender,
        age_band=band,
        threshold=THRESHOLD,
    )


def test_the_synthetic_world_is_shaped_like_dlib_descriptors(world: World) -> None:
    same = [np.linalg.norm(world.sample(0) - world.sample(0)) for _ in range(50)]
    other = [np.linalg.norm(world.sample(0) - world.sample(c)) for c in range(1, 40)]
    assert 0.2 < float(np.median(same)) < 0.4
    assert min(other) > 0.7


def test_a_sample_is_found_at_once_and_after_a_rebuild(world: World) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    next_id = load(engine, world)
    engine.rebuild()
    assert engine.stats()["buffered_max"] == 0
    assert engine.stats()["exact_partitions"] == 0

    newcomer = max(world.centres) + 1
    world.centres[newcomer], world.home[newcomer] = world.centre(), 11
    assert identify(engine, world.sample(newcomer), 11) is None
    engine.add(next_id, world.sample(newcomer), world.meta(newcomer))
    assert engine.stats()["buffered_max"] == 1  # in the buffers, not yet in any index

    before = identify(engine, world.sample(newcomer), 11)
    assert before is not None
    assert (before.customer_id, before.sample_id, before.level) == (
        newcomer,
        next_id,
        "store+gender+age",
    )
    report = engine.rebuild()
    assert report.partitions_built == 2  # its store and everyone (regions filter everyone)
    assert report.partitions_kept == len(STORES) - 1
    stats = engine.stats()
    assert stats["buffered_max"] == 0
    assert stats["annoy_items"] == 2 * (next_id + 1)
    after = identify(engine, world.sample(newcomer), 11)
    assert after is not None and after.customer_id == newcomer
    assert after.distance < THRESHOLD


def test_every_customer_is_recognised_at_home(world: World) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    load(engine, world)
    for rebuilt in (False, True):
        if rebuilt:
            engine.rebuild()
        for customer, store in world.home.items():
            match = identify(engine, world.sample(customer), store)
            assert match is not None, (customer, rebuilt)
            assert match.customer_id == customer
            assert match.level == "store+gender+age"


def test_small_partitions_are_searched_exactly(world: World) -> None:
    engine = RecognitionEngine(EngineSettings())  # exact up to 10k samples
    load(engine, world)
    engine.rebuild()
    stats = engine.stats()
    assert stats["annoy_partitions"] == 0
    assert stats["exact_partitions"] == len(STORES) + 1
    match = identify(engine, world.sample(3), world.home[3])
    assert match is not None and match.customer_id == 3


def test_a_removed_customer_is_never_returned(world: World) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    next_id = load(engine, world)
    gone = 5
    query = world.sample(gone)
    assert identify(engine, query, world.home[gone]) is not None

    engine.remove_customer(gone)
    assert identify(engine, query, world.home[gone]) is None  # before any rebuild
    assert engine.stats()["removals_pending"] == 1
    engine.rebuild()
    assert engine.stats()["removals_pending"] == 0
    assert engine.stats()["removed_customers"] == 1  # the id stays retired
    assert identify(engine, query, world.home[gone]) is None
    for store in STORES:  # nor anywhere else, at any level
        assert identify(engine, query, store) is None
    report = engine.rebuild()  # nothing left to purge: everything kept
    assert report.partitions_built == 0
    assert engine.stats()["samples"] == next_id - SAMPLES
    with pytest.raises(ValueError, match="removed"):
        engine.add(next_id, query, world.meta(gone))


def test_removing_the_nearest_customer_returns_the_next_one(world: World) -> None:
    """A removed twin's samples fill all the Annoy candidates; the engine looks further."""
    engine = RecognitionEngine(annoy_everywhere(candidates=2))
    next_id = load(engine, world)
    twin, sibling = 1000, 1001
    world.centres[twin] = world.centres[sibling] = world.centre()
    world.home[twin] = world.home[sibling] = 20
    # The twin's samples sit right at the centre, the sibling's a little further off.
    for i in range(SAMPLES):
        engine.add(next_id + i, world.centres[twin] + np.float32(0.001 * i), world.meta(twin))
    engine.add(next_id + SAMPLES, world.sample(sibling), world.meta(sibling))
    engine.rebuild()
    query = world.centres[twin].copy()
    first = identify(engine, query, 20)
    assert first is not None and first.customer_id == twin
    engine.remove_customer(twin)
    second = identify(engine, query, 20)
    assert second is not None and second.customer_id == sibling


@pytest.mark.parametrize("region_level", ["filter", "index"])
def test_widening_finds_customers_enrolled_elsewhere(world: World, region_level: str) -> None:
    engine = RecognitionEngine(annoy_everywhere(region_level=region_level))
    load(engine, world)
    customer = next(c for c, s in world.home.items() if s == 10)
    for rebuilt in (False, True):
        if rebuilt:
            engine.rebuild()
        levels = {}
        for store in (10, 11, 20):
            match = identify(engine, world.sample(customer), store)
            assert match is not None and match.customer_id == customer
            levels[store] = match.level
        assert levels == {10: "store+gender+age", 11: "region", 20: "global"}
        # Estimates that miss the stored ones move the match out of the narrowest level only.
        wrong_gender = identify(engine, world.sample(customer), 10, gender="male")
        assert wrong_gender is not None and wrong_gender.level == "store"
        off_by_one = identify(engine, world.sample(customer), 10, band=age_band(35) + 1)
        assert off_by_one is not None and off_by_one.level == "store+gender+age"
        off_by_two = identify(engine, world.sample(customer), 10, band=age_band(35) + 2)
        assert off_by_two is not None and off_by_two.level == "store"
        unknown = identify(engine, world.sample(customer), 10, gender="unknown", band=-1)
        assert unknown is not None and unknown.level == "store+gender+age"


@pytest.mark.parametrize("region_level", ["filter", "index"])
def test_the_region_level_prefers_the_query_region(world: World, region_level: str) -> None:
    """Two lookalikes: the one enrolled in the query's region wins at the region level, even
    when the other one, enrolled elsewhere, is nearer."""
    engine = RecognitionEngine(annoy_everywhere(region_level=region_level))
    next_id = load(engine, world)
    near, far = 3000, 3001
    centre = world.centre()
    world.centres[near], world.home[near] = centre, 20  # region 2, at the centre itself
    world.centres[far], world.home[far] = centre, 10  # region 1, a little off it
    offset = world.rng.normal(0, 0.02, DIM).astype(np.float32)
    for i in range(SAMPLES):
        engine.add(next_id + i, centre + np.float32(0.001 * i), world.meta(near))
        engine.add(next_id + SAMPLES + i, centre + offset, world.meta(far))
    for rebuilt in (False, True):
        if rebuilt:
            engine.rebuild()
        found = {store: identify(engine, centre, store) for store in (10, 11, 20, 21)}
        assert {s: (m.customer_id, m.level) for s, m in found.items() if m} == {
            10: (far, "store+gender+age"),
            11: (far, "region"),
            20: (near, "store+gender+age"),
            21: (near, "region"),
        }


def test_without_the_region_level_widening_goes_straight_to_everyone(world: World) -> None:
    engine = RecognitionEngine(annoy_everywhere(region_level="off"))
    load(engine, world)
    engine.rebuild()
    customer = next(c for c, s in world.home.items() if s == 10)
    match = identify(engine, world.sample(customer), 11)
    assert match is not None and (match.customer_id, match.level) == (customer, "global")
    assert engine.stats()["regions"] == 0


def test_a_stranger_gets_none(world: World) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    load(engine, world)
    engine.rebuild()
    stranger = 999
    world.centres[stranger] = world.centre()
    for store in STORES:
        assert identify(engine, world.sample(stranger), store) is None
    # An unknown store and region still reach everyone.
    match = engine.identify(
        world.sample(0),
        region_id=99,
        store_id=99,
        gender="unknown",
        age_band=-1,
        threshold=THRESHOLD,
    )
    assert match is not None and (match.customer_id, match.level) == (0, "global")


@pytest.mark.parametrize("region_level", ["filter", "index"])
def test_rebuild_concurrent_with_other_threads_loses_nothing(
    world: World, region_level: str
) -> None:
    engine = RecognitionEngine(annoy_everywhere(region_level=region_level))
    next_id = load(engine, world)
    engine.rebuild()
    newcomers = list(range(2000, 2030))
    for c in newcomers:
        world.centres[c], world.home[c] = world.centre(), list(STORES)[c % len(STORES)]
    gone = 7
    building = threading.Event()
    others_done = threading.Event()
    errors: list[BaseException] = []

    def progress(done: int, total: int) -> None:
        if done == 1:  # mid-rebuild: let the other threads work, and wait for them
            building.set()
            assert others_done.wait(10)

    def writer() -> None:
        try:
            assert building.wait(10)
            for i, c in enumerate(newcomers):
                engine.add(next_id + i, world.sample(c), world.meta(c))
                match = identify(engine, world.sample(c), world.home[c])
                assert match is not None and match.customer_id == c
            engine.remove_customer(gone)
            assert identify(engine, world.sample(gone), world.home[gone]) is None
        except BaseException as error:
            errors.append(error)
        finally:
            others_done.set()

    # Enough new samples everywhere that the rebuild has several partitions to build.
    for customer in list(world.centres)[:: PER_STORE // 2]:
        engine.add(next_id + 500 + customer, world.sample(customer), world.meta(customer))
    thread = threading.Thread(target=writer)
    thread.start()
    report = engine.rebuild(progress)
    thread.join()
    assert not errors, errors
    assert report.samples_buffered_after == len(newcomers)

    for rebuilt in (False, True):
        if rebuilt:
            engine.rebuild()
            assert engine.stats()["buffered_max"] == 0
        for c in newcomers:
            match = identify(engine, world.sample(c), world.home[c])
            assert match is not None and match.customer_id == c, (c, rebuilt)
        assert identify(engine, world.sample(gone), world.home[gone]) is None


def test_index_files_are_replaced_by_rename(world: World, tmp_path: Path) -> None:
    stale = tmp_path / ".global.123.abcd.ann.tmp"
    stale.write_bytes(b"half an index")
    settings = annoy_everywhere(region_level="index")
    engine = RecognitionEngine(settings, index_dir=tmp_path)
    assert not stale.exists()
    next_id = load(engine, world)
    engine.rebuild()
    path = tmp_path / "global.ann"
    inode = path.stat().st_ino
    # A reader holding the old index memory-mapped, as a search running during the swap does.
    old = AnnoyIndex(DIM, "euclidean")
    old.load(str(path))
    before = np.array(old.get_item_vector(0))

    for i in range(5):
        engine.add(next_id + i, world.sample(i), world.meta(i))
    engine.rebuild()
    assert path.stat().st_ino != inode  # a new file renamed over the name
    assert old.get_n_items() == next_id  # the old mapping still reads the old file
    np.testing.assert_array_equal(np.array(old.get_item_vector(0)), before)
    reader = AnnoyIndex(DIM, "euclidean")
    reader.load(str(path))
    assert reader.get_n_items() == next_id + 5
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(name.endswith(".ann") and not name.startswith(".") for name in names), names
    assert "region-1.ann" in names and "store-10.ann" in names
    assert engine.stats()["index_bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())

    # A store small enough for exact search again loses its index file.
    for customer, store in world.home.items():
        if store == 21:
            engine.remove_customer(customer)
    engine.rebuild()
    assert not (tmp_path / "store-21.ann").exists()
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        identify(engine, world.sample(0), 10)


@pytest.mark.parametrize(
    ("vector", "problem"),
    [
        (np.zeros(127, np.float32), "shape"),
        (np.zeros((1, DIM), np.float32), "shape"),
        (np.zeros(DIM, np.float64), "dtype must be float32"),
        (np.full(DIM, np.nan, np.float32), "NaN"),
        (np.full(DIM, np.inf, np.float32), "infinite"),
        ([0.0] * DIM, "numpy array"),
    ],
)
def test_bad_vectors_are_refused(world: World, vector: object, problem: str) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    with pytest.raises(ValueError, match=problem):
        engine.add(1, vector, world.meta(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=problem):
        identify(engine, vector, 10)  # type: ignore[arg-type]
    assert engine.stats()["samples"] == 0


def test_bad_arguments_are_refused(world: World) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE)
    load(engine, world)
    query = world.sample(0)
    with pytest.raises(ValueError, match="gender"):
        identify(engine, query, 10, gender="woman")
    with pytest.raises(ValueError, match="age_band"):
        identify(engine, query, 10, band=5)
    for threshold in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            engine.identify(
                query, region_id=1, store_id=10, gender="male", age_band=1, threshold=threshold
            )
    with pytest.raises(ValueError, match="gender"):
        SampleMeta(1, 1, 10, "woman", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer_id"):
        SampleMeta(-1, 1, 10, "male", 1)
    with pytest.raises(ValueError, match="sample_ids"):
        engine.add_many([1, 2, 3], np.stack([query, query]), [world.meta(0)] * 2)
    with pytest.raises(ValueError, match="sample_ids"):
        engine.add_many([1, -2], np.stack([query, query]), [world.meta(0)] * 2)
    with pytest.raises(ValueError, match="metas"):
        engine.add_many([1, 2], np.stack([query, query]), [world.meta(0)])
    with pytest.raises(ValueError, match=r"vectors must have shape \(n, 128\)"):
        engine.add_many([1], np.zeros((1, 64), np.float32), [world.meta(0)])
    with pytest.raises(ValueError, match="store 10 is in region 1, not 2"):
        engine.add(999, query, SampleMeta(0, 2, 10, "male", 1))
    with pytest.raises(ValidationError):
        EngineSettings(n_trees=0)
    with pytest.raises(ValidationError):
        EngineSettings(search_depth=3)  # type: ignore[call-arg]


def test_age_bands() -> None:
    assert [age_band(a) for a in (0, 17, 17.9, 18, 29, 30, 44, 45, 59, 60, 99)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]
    assert age_band(None) == age_band(float("nan")) == -1
    with pytest.raises(ValueError, match="age"):
        age_band(-3)


def test_index_dir_left_with_only_index_files_after_a_failed_build(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = RecognitionEngine(ANNOY_EVERYWHERE, index_dir=tmp_path)
    load(engine, world)

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        engine.rebuild()
    assert os.listdir(tmp_path) == []
    match = identify(engine, world.sample(0), world.home[0])  # still served from the buffers
    assert match is not None and match.customer_id == 0
