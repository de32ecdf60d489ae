"""The recognition engine: which customer, if any, a face descriptor belongs to.

Pure numpy and Annoy, no database and no HTTP: the API layer loads the samples at start-up
(`add_many`: every one, or those beyond the index version it maps, `adopt`), adds new ones as
customers enrol (`add`), deletes customers on request (`remove_customer`) and either rebuilds
the indexes in a background thread (`rebuild`) when `rebuild_due()` says so, or moves to the
next published version.

Layout
------
There is a partition per store and one for everyone (and, with `region_level="index"`, one
per region). Each is either

* **exact**: at most `EngineSettings.exact_max_size` samples, kept in a numpy matrix and
  searched by one matrix-vector product. Up to about that size this is as fast as Annoy (see
  `bench/recognition.py`, "exact vs Annoy by partition size") and never misses; or
* **Annoy**: an immutable, memory-mapped Annoy index over the samples it had at the last
  rebuild, plus a small exact *buffer* of the samples added since, so that a new sample is
  searchable the moment `add` returns. `rebuild` folds the buffers into fresh indexes.

Which of the two is decided per partition, at every rebuild, by its size: with the defaults a
store of up to 10k samples is searched exactly, the global partition (and a bigger store)
through Annoy. Store partitions also keep every descriptor in memory (the master copy the other
indexes are rebuilt from); the other partitions hold only their buffers beside their files.

Search
------
`identify` widens from the query's store to its region to everyone, as described in
`cloud_api.recognition.partitions`, and returns the nearest sample closer than the threshold at
the first level that has one (open-set: None when no level has one). Two searches at most:

* the query's store, once: its hits recorded with estimates that fit the query's answer the
  store+gender+age level, any of its hits the store level;
* everyone, once: with `region_level="filter"` (the default) its hits enrolled in the query's
  region answer the region level, any of its hits the global level. The region level so costs
  nothing beyond the global search that strangers need anyway. At 1M samples the benchmark
  measured a separate index per region (`"index"`) slower for strangers and visitors from
  other regions (p50 2.2 ms against 1.7 ms; p99 overall 2.5 against 2.0 ms), with 60% more
  build time and 66% more disk, for agreement 1.0000 against 0.9995 (one query in 2000).
  `"off"` skips the region level.

A level holding exactly the samples of the one before (everyone, when there is only one
store) is skipped.

Index versions
--------------
An engine can also serve from an index version built by another process
(`cloud_api.recognition.index_versions`): `snapshot` + `export` write every store's live rows
and the Annoy indexes a rebuild would build into a version being published (an index
unchanged since the version the engine maps is hard-linked instead of built again); `adopt`
replaces every partition with the version's, memory-mapped read-only (shared with every
process mapping the same files), plus exact buffers of the samples the engine holds that the
version does not. An engine that maps a version is never rebuilt in place: the index
directory's builder publishes the next version instead.

Removal
-------
A removed customer's id goes into a tombstone set checked on every result, so they are never
returned once `remove_customer` has returned; their rows are purged at the next rebuild. The id
stays retired: adding samples for it again raises ValueError.

Threads
-------
`identify`, `add`, `add_many`, `remove_customer` and `stats` may be called from any thread, also
while `rebuild` runs in another. A lock guards only short steps: appending rows, taking a
snapshot at the start of a rebuild, and swapping the new partitions in at its end (with the rows
added meanwhile copied over). Searches read immutable views outside the lock; Annoy indexes
replaced by a rebuild are unmapped when the last search using them lets go.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from cloud_api.recognition.annoy_partition import (
    INDEX_SUFFIX,
    AnnoyPartition,
    build_partition,
    remove_stale_temp_files,
    write_index,
)
from cloud_api.recognition.exact_buffer import (
    F32,
    ROW_DTYPES,
    ExactBuffer,
    Hits,
    Labels,
    Rows,
    exact_hits,
    make_rows,
    row_columns,
)
from cloud_api.recognition.index_versions import (
    MappedVersion,
    RegionEntry,
    StoreEntry,
    VersionWriter,
)
from cloud_api.recognition.partitions import (
    Level,
    Match,
    NarrowFilter,
    SampleMeta,
    check_age_band,
    check_id,
    gender_code,
)
from cloud_api.recognition.settings import EngineSettings

log = structlog.get_logger(__name__)

Progress = Callable[[int, int], None]
_MAX_REQUERY_GROWTH = 4


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What one `rebuild` did."""

    seconds: float
    partitions_built: int  # partitions replaced (indexes built or exact rows compacted)
    partitions_kept: int  # partitions with nothing to fold in or purge
    annoy_indexes_built: int
    samples_indexed: int  # items put into the new Annoy indexes, over all levels
    samples_purged: int  # rows of removed customers dropped (counted once, at the store level)
    samples_buffered_after: int  # rows added while the rebuild ran, now in the new buffers


@dataclass(frozen=True, slots=True, eq=False)
class _Partition:
    """One store's, one region's or everyone's samples.

    `annoy` covers the samples indexed at the last rebuild. `rows` are searched exactly from
    `exact_from` on: for a store, `rows` are all its samples (the first `exact_from` of them
    being `annoy`'s items, in order); for a region or everyone, `rows` are only the samples
    added since (`exact_from` is 0). Without `annoy`, `rows` are the whole partition.

    A partition of a mapped index version (`adopt`) has a `base` instead: the version's rows
    of it, read-only (a store's: all of them, which are also `annoy`'s items when it has an
    index; a region's or everyone's: only when searched exactly). `rows` then hold only the
    samples added since the version, `exact_from` is 0, and without `annoy` the base is
    searched exactly too.
    """

    name: str
    rows: ExactBuffer
    annoy: AnnoyPartition | None
    exact_from: int
    base: Rows | None = None

    def size(self, rows: Rows) -> int:
        if self.annoy is not None:
            indexed = self.annoy.n_items
        else:
            indexed = self.base.count if self.base is not None else 0
        return rows.count + indexed - self.exact_from

    def pending(self, rows: Rows, exact_max_size: int) -> int:
        """Samples a rebuild would fold into an index."""
        if self.annoy is not None:
            return rows.count - self.exact_from
        return max(0, self.size(rows) - exact_max_size)

    def exact(self, rows: Rows, query: F32, query_sq: float, threshold: float) -> Hits:
        """The hits among the samples searched exactly (`rows` from `exact_from` on, and the
        base when there is no index)."""
        found = exact_hits(rows, self.exact_from, query, query_sq, threshold)
        if self.base is not None and self.annoy is None:
            found = found.merge(exact_hits(self.base, 0, query, query_sq, threshold))
        return found

    def own_bytes(self) -> int:
        """Memory this partition holds outside memory-mapped files."""
        own = self.rows.capacity_bytes
        if self.annoy is not None and not isinstance(self.annoy.labels.sample_ids, np.memmap):
            own += self.annoy.nbytes
        if self.base is not None and not isinstance(self.base.vectors, np.memmap):
            own += self.base.nbytes
        return own

    def master(self, rows: Rows) -> list[Rows]:
        """A store's samples (base and rows), as blocks."""
        return [b for b in (self.base, rows) if b is not None and b.count]


@dataclass(frozen=True, slots=True)
class _Plan:
    """For one partition: the live rows at the snapshot and whether to replace it."""

    key: tuple[str, int]
    part: _Partition
    snapshot_count: int  # part.rows.count at the snapshot
    blocks: list[Rows]  # live rows (store level: one block; others: one per member store)
    live: int
    purged: int
    want_annoy: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """The engine's partitions at one instant, as an index version is built from them."""

    plans: list[_Plan]
    removed: int  # removed customers then (their samples left out)
    store_region: dict[int, int]


@dataclass(frozen=True, slots=True)
class ExportedIndex:
    """What `RecognitionEngine.export` wrote into a version."""

    stores: tuple[StoreEntry, ...]
    regions: tuple[RegionEntry, ...]
    global_annoy: str | None
    samples: int
    removed_customers: int
    annoy_built: int
    annoy_linked: int

    def fields(self) -> dict[str, object]:
        """As the `Manifest` fields of the same names."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class LevelHits:
    """One level's samples near a query: whose they are and how far, nearest first.

    `size` is how many samples the level's partition holds (for a region filtered out of
    everyone's index: everyone's).
    """

    level: Level
    customer_ids: NDArray[np.int64]
    distances: NDArray[np.float64]
    size: int


def _level_hits(level: Level, hits: Hits, keep: NDArray[np.bool_], size: int) -> LevelHits:
    index = np.flatnonzero(keep)
    return LevelHits(
        level,
        hits.labels.customer_ids[index],
        np.asarray(hits.distances[index], dtype=np.float64),
        size,
    )


@functools.lru_cache(maxsize=64)
def _narrow_filter(gender: int, band: int) -> NarrowFilter:
    return NarrowFilter(gender, band)


class RecognitionEngine:
    """Open-set identification over partitioned Annoy indexes; see the module docstring."""

    def __init__(self, settings: EngineSettings | None = None, index_dir: Path | None = None):
        self.settings = settings if settings is not None else EngineSettings()
        self.index_dir = index_dir
        if index_dir is not None:
            index_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            index_dir.chmod(0o700)  # its files hold descriptors
            remove_stale_temp_files(index_dir)
        self._lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._stores: dict[int, _Partition] = {}
        self._regions: dict[int, _Partition] = {}
        self._global: _Partition | None = None
        self._store_region: dict[int, int] = {}
        self._removed: set[int] = set()
        self._removed_purged = 0  # how many of _removed the last rebuild's snapshot held
        self._rebuilds = 0
        self._last_rebuild_seconds = 0.0
        self._annoy_built = 0  # Annoy indexes this engine built (rebuilds and versions)
        self._version = 0  # the index version mapped (adopt), 0 for none
        self._adopted = 0
        self._closed = False
        log.info(
            "recognition_engine_started",
            index_dir=str(index_dir) if index_dir is not None else None,
            **self.settings.model_dump(),
        )

    # ----------------------------------------------------------------------------- adding

    def add(self, sample_id: int, vector: NDArray[np.float32], meta: SampleMeta) -> None:
        """Add one sample; `identify` finds it as soon as this returns."""
        query = self._check_vector(vector)
        self.add_many(np.array([check_id("sample_id", sample_id)]), query[None, :], [meta])

    def add_many(
        self,
        sample_ids: Sequence[int] | NDArray[np.integer[Any]],
        vectors: NDArray[np.float32],
        metas: Sequence[SampleMeta],
    ) -> None:
        """Add many samples at once (the start-up load from the database); all or none.

        Sample ids are the database's keys and are not checked for uniqueness.
        """
        if not isinstance(vectors, np.ndarray) or vectors.ndim != 2:
            shape = getattr(vectors, "shape", type(vectors).__name__)
            raise ValueError(f"vectors must be a 2-D array (n, {self.settings.dim}), got {shape}")
        count = len(vectors)
        self._check_matrix(vectors, "vectors")
        ids = np.asarray(sample_ids)
        if ids.shape != (count,) or (count and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(
                f"sample_ids must be {count} integers (one per vector), got "
                f"shape {ids.shape} dtype {ids.dtype}"
            )
        if count and (ids.min() < 0 or int(ids.max()) > np.iinfo(np.int64).max):
            raise ValueError("sample_ids must be between 0 and 2**63 - 1")
        if len(metas) != count:
            raise ValueError(f"metas must be {count} SampleMeta (one per vector), got {len(metas)}")
        if not all(isinstance(m, SampleMeta) for m in metas):
            raise ValueError("metas must be SampleMeta instances")
        if count == 0:
            return
        customers = np.fromiter((m.customer_id for m in metas), np.int64, count)
        regions = np.fromiter((m.region_id for m in metas), np.int64, count)
        stores = np.fromiter((m.store_id for m in metas), np.int64, count)
        genders = np.fromiter((gender_code(m.gender) for m in metas), np.int8, count)
        bands = np.fromiter((m.age_band for m in metas), np.int8, count)
        rows = make_rows(vectors, Labels(ids.astype(np.int64), customers, regions, genders, bands))

        order = np.argsort(stores, kind="stable")
        bounds = np.flatnonzero(np.diff(stores[order])) + 1
        by_store = np.split(order, bounds)
        store_region: dict[int, int] = {}
        for members in by_store:
            store = int(stores[members[0]])
            region_ids = np.unique(regions[members])
            if len(region_ids) > 1:
                raise ValueError(f"store {store} given in several regions: {region_ids.tolist()}")
            store_region[store] = int(region_ids[0])

        with self._lock:
            self._check_open()
            for store, region in store_region.items():
                known = self._store_region.get(store, region)
                if known != region:
                    raise ValueError(f"store {store} is in region {known}, not {region}")
            if self._removed:
                gone = [c for c in np.unique(customers).tolist() if c in self._removed]
                if gone:
                    raise ValueError(f"customers were removed and cannot come back: {gone[:10]}")
            for members in by_store:
                store = int(stores[members[0]])
                region = store_region[store]
                self._store_region[store] = region
                block = rows.take(members)
                self._partition(self._stores, store, "store").rows.append(block)
                if self.settings.region_level == "index":
                    self._partition(self._regions, region, "region").rows.append(block)
            if self._global is None:
                self._global = self._new_partition("global")
            self._global.rows.append(rows)

    def _partition(self, level: dict[int, _Partition], key: int, prefix: str) -> _Partition:
        part = level.get(key)
        if part is None:
            part = level[key] = self._new_partition(f"{prefix}-{key}")
        return part

    def _new_partition(self, name: str) -> _Partition:
        return _Partition(name, ExactBuffer(self.settings.dim), None, 0)

    # ----------------------------------------------------------------------------- removing

    def remove_customer(self, customer_id: int) -> None:
        """Never return this customer again, starting now; their samples go at the next
        rebuild. Removing an unknown or already removed customer is not an error."""
        customer = check_id("customer_id", customer_id)
        with self._lock:
            self._check_open()
            self._removed.add(customer)
        log.info("recognition_customer_removed", customer_id=customer)

    # ----------------------------------------------------------------------------- searching

    def identify(
        self,
        vector: NDArray[np.float32],
        *,
        region_id: int,
        store_id: int,
        gender: str,
        age_band: int,
        threshold: float,
    ) -> Match | None:
        """The nearest sample closer than `threshold` at the narrowest level that has one.

        `gender` and `age_band` are the query's estimates ("unknown" / -1 when there are
        none); they only choose what is searched first.
        """
        query = self._check_vector(vector)
        narrow = _narrow_filter(gender_code(gender), check_age_band(age_band))
        check_id("region_id", region_id)
        check_id("store_id", store_id)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"threshold must be a number, got {type(threshold).__name__}")
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold must be a finite distance > 0, got {threshold}")
        threshold = float(threshold)

        plan = self._levels(region_id, store_id)

        query_sq = float(query @ query)
        query_list: list[float] = []
        region_first = self.settings.region_level == "filter"
        searched = 0
        for level, part, rows in plan:
            size = part.size(rows)
            if size == searched:  # nested partitions: same size, same samples
                continue
            searched = size
            if not query_list and part.annoy is not None:
                query_list = query.tolist()
            want_narrow = narrow if level == "store" else None
            hits = self._hits(part, rows, query, query_list, query_sq, threshold, want_narrow)
            best = self._first_alive(hits)
            if best is None:
                continue
            if level == "store":
                narrowest = self._first_alive(hits, narrow=narrow)
                if narrowest is not None:
                    return self._match(hits, narrowest, "store+gender+age")
            elif level == "global" and region_first:
                in_region = self._first_alive(hits, region=region_id)
                if in_region is not None:
                    return self._match(hits, in_region, "region")
            return self._match(hits, best, level)
        return None

    def neighbours(
        self,
        vector: NDArray[np.float32],
        *,
        region_id: int,
        store_id: int,
        radius: float,
        count: int,
    ) -> list[LevelHits]:
        """Samples of customers not removed within `radius`, per level, narrowest first.

        For each level searched (the store, the region, everyone; a level holding exactly the
        samples of the one before is left out) the nearest samples, at most about `count` of
        them from an Annoy index (exact partitions and buffers give every one within the
        radius). The decision policy turns these into per-customer scores.
        """
        query = self._check_vector(vector)
        check_id("region_id", region_id)
        check_id("store_id", store_id)
        if not math.isfinite(radius) or radius <= 0:
            raise ValueError(f"radius must be a finite distance > 0, got {radius}")
        plan = self._levels(region_id, store_id)
        query_sq = float(query @ query)
        query_list = query.tolist()
        out: list[LevelHits] = []
        searched = 0
        for level, part, rows in plan:
            size = part.size(rows)
            if size == searched:
                continue
            searched = size
            hits = part.exact(rows, query, query_sq, radius)
            if part.annoy is not None:
                search_k = max(self.settings.search_k, count * self.settings.n_trees)
                hits = hits.merge(part.annoy.hits(query_list, radius, count, search_k))
            alive = self._alive(hits)
            if level == "global" and self.settings.region_level == "filter":
                in_region = alive & (hits.labels.regions == region_id)
                out.append(_level_hits("region", hits, in_region, size))
            out.append(_level_hits(level, hits, alive, size))
        return out

    def _levels(self, region_id: int, store_id: int) -> list[tuple[Level, _Partition, Rows]]:
        """The partitions a query searches, narrowest first, each with its rows right now."""
        plan: list[tuple[Level, _Partition, Rows]] = []
        with self._lock:
            self._check_open()
            store = self._stores.get(store_id)
            region = self._regions.get(region_id)
            if store is not None:
                plan.append(("store", store, store.rows.rows))
            if region is not None:
                plan.append(("region", region, region.rows.rows))
            if self._global is not None:
                plan.append(("global", self._global, self._global.rows.rows))
        return plan

    def _alive(self, hits: Hits) -> NDArray[np.bool_]:
        usable = np.ones(len(hits), dtype=bool)
        removed = self._removed
        if removed and len(hits):
            customers = hits.labels.customer_ids.tolist()
            usable &= np.fromiter((c not in removed for c in customers), bool, len(usable))
        return usable

    def _hits(
        self,
        part: _Partition,
        rows: Rows,
        query: NDArray[np.float32],
        query_list: list[float],
        query_sq: float,
        threshold: float,
        narrow: NarrowFilter | None,
    ) -> Hits:
        """Every candidate closer than the threshold in one partition, nearest first."""
        found = part.exact(rows, query, query_sq, threshold)
        if part.annoy is None:
            return found
        n = self.settings.candidates
        search_k = self.settings.search_k
        while True:
            approx = part.annoy.hits(query_list, threshold, n, search_k)
            full = len(approx) == n and n < part.annoy.n_items
            if not full or self._first_alive(approx, narrow=narrow) is not None:
                break
            # Every one of the n is closer than the threshold, none usable: look further.
            n *= _MAX_REQUERY_GROWTH
            search_k = max(search_k, n * self.settings.n_trees)
        return found.merge(approx)

    def _first_alive(
        self, hits: Hits, *, narrow: NarrowFilter | None = None, region: int | None = None
    ) -> int | None:
        """The nearest hit of a customer not removed (and, if given, recorded with estimates
        `narrow` allows, or enrolled in `region`)."""
        if len(hits) == 0:
            return None
        labels = hits.labels
        usable = np.ones(len(hits), dtype=bool)
        if narrow is not None:
            usable &= narrow.allows(labels.genders, labels.bands)
        if region is not None:
            usable &= labels.regions == region
        removed = self._removed
        if removed:
            customers = labels.customer_ids.tolist()
            usable &= np.fromiter((c not in removed for c in customers), bool, len(usable))
        first = int(np.argmax(usable))
        return first if usable[first] else None

    @staticmethod
    def _match(hits: Hits, i: int, level: Level) -> Match:
        return Match(
            customer_id=int(hits.labels.customer_ids[i]),
            distance=float(hits.distances[i]),
            sample_id=int(hits.labels.sample_ids[i]),
            level=level,
        )

    # ----------------------------------------------------------------------------- rebuilding

    def rebuild_due(self) -> bool:
        """Whether some partition's buffer has outgrown `rebuild_buffer_limit`."""
        limit = self.settings.rebuild_buffer_limit
        cutoff = self.settings.exact_max_size
        with self._lock:
            parts = self._all()
        return any(p.pending(p.rows.rows, cutoff) > limit for p in parts)

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Fold every buffer into a fresh index and purge removed customers' samples.

        Partitions with nothing new and nothing to purge are kept as they are. Each changed
        partition becomes exact or Annoy by its new size. Building happens outside the lock;
        `progress(done, total)` is called with partitions built so far. Only one rebuild
        runs at a time (a second call waits). If a build fails, the exception propagates and
        the engine goes on serving from the partitions it had.
        """
        if self._version:
            raise RuntimeError(
                "an engine serving a mapped index version is not rebuilt in place: the "
                "index directory's builder publishes a new version"
            )
        with self._rebuild_lock:
            started = time.perf_counter()
            plans, removed_at_start = self._plan()
            todo = [p for p in plans if p.changed]
            log.info(
                "recognition_rebuild_started",
                partitions=len(plans),
                to_build=len(todo),
                removed_customers=removed_at_start,
            )
            if progress is not None:
                progress(0, len(todo))
            built: dict[tuple[str, int], _Partition] = {}
            indexed = annoy_built = 0
            for done, plan in enumerate(todo, start=1):
                built[plan.key] = self._build(plan)
                if plan.want_annoy:
                    indexed += plan.live
                    annoy_built += 1
                log.debug("recognition_partition_built", partition=plan.key, samples=plan.live)
                if progress is not None:
                    progress(done, len(todo))
            tail = self._swap(plans, built)
            self._removed_purged = removed_at_start
            seconds = time.perf_counter() - started
            report = RebuildReport(
                seconds=seconds,
                partitions_built=len(todo),
                partitions_kept=len(plans) - len(todo),
                annoy_indexes_built=annoy_built,
                samples_indexed=indexed,
                samples_purged=sum(p.purged for p in plans if p.key[0] == "store" and p.changed),
                samples_buffered_after=tail,
            )
            self._rebuilds += 1
            self._annoy_built += annoy_built
            self._last_rebuild_seconds = seconds
            log.info("recognition_rebuild_finished", **_as_dict(report))
            return report

    def _plan(self) -> tuple[list[_Plan], int]:
        snapshot = self.snapshot()
        return snapshot.plans, snapshot.removed

    def snapshot(self) -> EngineSnapshot:
        """Every partition's live rows (removed customers' left out) right now, and which
        partitions changed since they were built: what a rebuild or `export` works from."""
        with self._lock:
            self._check_open()
            stores = {k: (p, p.rows.rows) for k, p in self._stores.items()}
            regions = {k: (p, p.rows.rows) for k, p in self._regions.items()}
            everyone = (self._global, self._global.rows.rows) if self._global else None
            store_region = dict(self._store_region)
            removed = np.fromiter(self._removed, np.int64, len(self._removed))
        cutoff = self.settings.exact_max_size
        plans: list[_Plan] = []
        live: dict[int, list[Rows]] = {}
        purged_of: dict[int, int] = {}
        for key, (part, rows) in sorted(stores.items()):
            blocks = []
            for block in part.master(rows):
                dead = np.isin(block.labels.customer_ids, removed) if len(removed) else None
                purged = int(dead.sum()) if dead is not None else 0
                purged_of[key] = purged_of.get(key, 0) + purged
                blocks.append(
                    block.take(np.flatnonzero(~dead)) if dead is not None and purged else block
                )
            live[key] = [b for b in blocks if b.count]
            plans.append(
                self._plan_one(("store", key), part, rows, live[key], purged_of.get(key, 0), cutoff)
            )

        def group(members: Iterable[int]) -> tuple[list[Rows], int]:
            keys = [s for s in members if s in live]
            purged = sum(purged_of.get(s, 0) for s in keys)
            return [b for s in keys for b in live[s]], purged

        for key, (part, rows) in sorted(regions.items()):
            blocks, purged = group(s for s, r in store_region.items() if r == key)
            plans.append(self._plan_one(("region", key), part, rows, blocks, purged, cutoff))
        if everyone is not None:
            blocks, purged = group(sorted(live))
            part, rows = everyone
            plans.append(self._plan_one(("global", 0), part, rows, blocks, purged, cutoff))
        return EngineSnapshot(plans, len(removed), store_region)

    @staticmethod
    def _plan_one(
        key: tuple[str, int],
        part: _Partition,
        rows: Rows,
        blocks: list[Rows],
        purged: int,
        cutoff: int,
    ) -> _Plan:
        live = sum(b.count for b in blocks)
        want_annoy = live > cutoff
        has_annoy = part.annoy is not None
        changed = (
            purged > 0 or want_annoy != has_annoy or (want_annoy and rows.count > part.exact_from)
        )
        return _Plan(key, part, rows.count, blocks, live, purged, want_annoy, changed)

    def _build(self, plan: _Plan) -> _Partition:
        """The replacement for one partition, from its live rows at the snapshot."""
        level, _ = plan.key
        name = plan.part.name
        dim = self.settings.dim
        annoy = (
            build_partition(name, plan.blocks, self.settings, self.index_dir)
            if plan.want_annoy
            else None
        )
        if level == "store":  # the master copy: every row, indexed or not
            block = Rows.concat(plan.blocks, dim) if len(plan.blocks) != 1 else plan.blocks[0]
            spare = max(64, block.count // 8)
            indexed = block.count if annoy is not None else 0
            return _Partition(name, ExactBuffer(dim, block, spare), annoy, indexed)
        if annoy is not None:
            return _Partition(name, ExactBuffer(dim), annoy, 0)
        return _Partition(name, ExactBuffer(dim, Rows.concat(plan.blocks, dim)), None, 0)

    def _swap(self, plans: list[_Plan], built: dict[tuple[str, int], _Partition]) -> int:
        """Put the built partitions in place, each with the rows added since the snapshot."""
        retired: list[Path] = []
        tail_rows = 0
        with self._lock:
            if self._closed:
                return 0
            swaps = [(plan, built[plan.key]) for plan in plans if plan.key in built]
            for plan, _ in swaps:  # check everything before changing anything
                if self._current(*plan.key) is not plan.part:
                    raise AssertionError(f"{plan.key} was replaced during the rebuild")
            for plan, new in swaps:
                level, key = plan.key
                current = plan.part
                tail = current.rows.rows.take(slice(plan.snapshot_count, None))
                new.rows.append(tail)
                tail_rows += tail.count if level == "global" else 0
                if level == "store":
                    self._stores[key] = new
                elif level == "region":
                    self._regions[key] = new
                else:
                    self._global = new
                old_path = current.annoy.path if current.annoy is not None else None
                if old_path is not None and new.annoy is None:
                    retired.append(old_path)
        for path in retired:  # a search still using the old index keeps its mapping
            path.unlink(missing_ok=True)
        return tail_rows

    def _current(self, level: str, key: int) -> _Partition | None:
        if level == "store":
            return self._stores.get(key)
        if level == "region":
            return self._regions.get(key)
        return self._global

    # ----------------------------------------------------------------------------- versions

    def export(self, snapshot: EngineSnapshot, writer: VersionWriter) -> ExportedIndex:
        """Write `snapshot` into a version being written: the live rows of every store (in
        ascending store id) and an Annoy file per partition too big to search exactly. An
        index unchanged since the version this engine maps is hard-linked, not built again.
        Runs outside every lock (searches and adds go on meanwhile)."""
        dim = self.settings.dim
        stores = [plan for plan in snapshot.plans if plan.key[0] == "store" and plan.live]
        total = sum(plan.live for plan in stores)
        shapes = {"vectors": (total, dim)}
        arrays = {
            name: writer.array(f"rows.{name}", shapes.get(name, (total,)), dtype)
            for name, dtype in ROW_DTYPES.items()
        }
        entries: list[StoreEntry] = []
        at = 0
        for plan in stores:
            start = at
            for block in plan.blocks:
                for name, values in row_columns(block).items():
                    arrays[name][at : at + block.count] = values
                at += block.count
            region = snapshot.store_region[plan.key[1]]
            entries.append(
                StoreEntry(store=plan.key[1], region=region, start=start, stop=at, annoy=None)
            )
        for array in arrays.values():
            array.flush()
        del arrays
        files: dict[tuple[str, int], str] = {}
        built = linked = 0
        for plan in snapshot.plans:
            if not plan.want_annoy:
                continue
            name = plan.part.name
            old = plan.part.annoy
            if (
                not plan.changed
                and old is not None
                and old.path is not None
                and writer.link(name, old.path)
            ):
                linked += 1
            else:
                began = time.perf_counter()
                write_index(plan.blocks, self.settings, writer.annoy_path(name))
                built += 1
                log.debug(
                    "recognition_index_written",
                    partition=name,
                    samples=plan.live,
                    seconds=round(time.perf_counter() - began, 2),
                )
            files[plan.key] = f"{name}{INDEX_SUFFIX}"
        with self._lock:
            self._annoy_built += built
            self._removed_purged = snapshot.removed
        regions = sorted(key for level, key in (p.key for p in snapshot.plans) if level == "region")
        return ExportedIndex(
            stores=tuple(
                e.model_copy(update={"annoy": files.get(("store", e.store))}) for e in entries
            ),
            regions=tuple(RegionEntry(region=r, annoy=files.get(("region", r))) for r in regions),
            global_annoy=files.get(("global", 0)),
            samples=total,
            removed_customers=snapshot.removed,
            annoy_built=built,
            annoy_linked=linked,
        )

    def adopt(self, version: MappedVersion) -> dict[int, Rows]:
        """Serve from a mapped index version from now on.

        Every partition becomes the version's (its rows and Annoy indexes memory-mapped, shared
        with every process mapping the same files) plus an exact buffer of the samples this
        engine holds that the version does not (added after its builder's snapshot); those it
        holds are dropped from the buffers. Removed customers stay removed: the version left
        out those removed before its snapshot, and the tombstones cover the rest. Returns the
        samples kept in the buffers, per store.
        """
        if version.manifest.settings.dim != self.settings.dim:
            raise ValueError(f"index version {version.number} holds rows of another length")
        dim = self.settings.dim
        mapped = _MappedPartitions.of(version, self.settings.region_level == "index")
        with self._lock:
            self._check_open()
            if any(p.exact_from for p in self._all()):
                raise RuntimeError("an engine rebuilt in place cannot adopt an index version")
            kept = self._beyond(version)
            self._store_region.update(version.store_regions)
            stores: dict[int, _Partition] = {}
            for store in sorted(mapped.stores.keys() | kept.keys()):
                base, annoy = mapped.stores.get(store, (None, None))
                stores[store] = _Partition(
                    f"store-{store}", ExactBuffer(dim, kept.get(store)), annoy, 0, base
                )
            regions: dict[int, _Partition] = {}
            if self.settings.region_level == "index":
                in_region = {self._store_region[s] for s in kept}
                for region in sorted(mapped.regions.keys() | in_region):
                    base, annoy = mapped.regions.get(region, (None, None))
                    own = [r for s, r in sorted(kept.items()) if self._store_region[s] == region]
                    buffer = ExactBuffer(dim, Rows.concat(own, dim))
                    regions[region] = _Partition(f"region-{region}", buffer, annoy, 0, base)
            everyone = ExactBuffer(dim, Rows.concat([r for _, r in sorted(kept.items())], dim))
            base, annoy = mapped.everyone
            self._stores = stores
            self._regions = regions
            self._global = _Partition("global", everyone, annoy, 0, base)
            self._version = version.number
            self._adopted += 1
        log.debug(
            "recognition_version_adopted",
            version=version.number,
            samples_mapped=version.rows.count,
            samples_buffered=sum(r.count for r in kept.values()),
        )
        return kept

    def _beyond(self, version: MappedVersion) -> dict[int, Rows]:
        """Per store, the buffered rows `version` does not hold, removed customers' left out
        (under the lock)."""
        removed = np.fromiter(self._removed, np.int64, len(self._removed))
        kept: dict[int, Rows] = {}
        for store, part in self._stores.items():
            rows = part.rows.rows
            keep = ~version.manifest.mark.holds(rows.labels.sample_ids)
            if len(removed):
                keep &= ~np.isin(rows.labels.customer_ids, removed)
            if keep.any():
                kept[store] = rows if keep.all() else rows.take(np.flatnonzero(keep))
        return kept

    # ----------------------------------------------------------------------------- the rest

    def stats(self) -> dict[str, int | float]:
        """Sizes and counters, for logs and the health endpoint."""
        with self._lock:
            parts = [(p, p.rows.rows) for p in self._all()]
            stores = [(p, p.rows.rows) for p in self._stores.values()]
            removed = len(self._removed)
            pending_removals = removed - self._removed_purged
        cutoff = self.settings.exact_max_size
        pending = [p.pending(rows, cutoff) for p, rows in parts]
        mapped = [p.base for p, _ in parts if p.base is not None]
        return {
            "samples": sum(rows.count + (p.base.count if p.base else 0) for p, rows in stores),
            "removed_customers": removed,  # ever: removed ids stay retired
            "removals_pending": pending_removals,  # removed since the last rebuild's start
            "stores": len(self._stores),
            "regions": len(self._regions),
            "annoy_partitions": sum(p.annoy is not None for p, _ in parts),
            "exact_partitions": sum(p.annoy is None for p, _ in parts),
            "annoy_items": sum(p.annoy.n_items for p, _ in parts if p.annoy is not None),
            "buffered_max": max(pending, default=0),
            "index_bytes": sum(p.annoy.disk_bytes for p, _ in parts if p.annoy is not None),
            "memory_bytes": sum(p.own_bytes() for p, _ in parts),  # this process's own
            "mapped_bytes": sum(  # rows of a version, shared with the other processes mapping it
                rows.nbytes for rows in mapped if isinstance(rows.vectors, np.memmap)
            ),
            "rebuilds": self._rebuilds,
            "last_rebuild_seconds": self._last_rebuild_seconds,
            "annoy_builds": self._annoy_built,  # Annoy indexes built by this process, ever
            "index_version": self._version,  # the version mapped (0: none)
            "versions_adopted": self._adopted,
            "unpublished": sum(rows.count for _, rows in stores),  # samples beyond the version
        }

    def close(self, *, remove_files: bool = False) -> None:
        """Drop every index and row; further calls raise RuntimeError. With `remove_files`
        the index files this engine wrote are deleted (a clean stop: they hold descriptors);
        otherwise they stay."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            paths = [p.annoy.path for p in self._all() if p.annoy is not None and p.annoy.path]
            self._stores.clear()
            self._regions.clear()
            self._global = None
        if remove_files:
            for path in paths:  # a search still holding a mapping keeps reading its inode
                path.unlink(missing_ok=True)
            if self.index_dir is not None:
                remove_stale_temp_files(self.index_dir)
        log.info("recognition_engine_closed", files_removed=remove_files)

    def __enter__(self) -> RecognitionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self) -> list[_Partition]:
        parts = [*self._stores.values(), *self._regions.values()]
        return parts + ([self._global] if self._global is not None else [])

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the recognition engine is closed")

    def _check_vector(self, vector: object) -> NDArray[np.float32]:
        if not isinstance(vector, np.ndarray):
            raise ValueError(f"vector must be a numpy array, got {type(vector).__name__}")
        if vector.shape != (self.settings.dim,):
            raise ValueError(f"vector must have shape ({self.settings.dim},), got {vector.shape}")
        self._check_matrix(vector, "vector")
        return np.ascontiguousarray(vector)

    def _check_matrix(self, values: NDArray[np.generic], name: str) -> None:
        if values.dtype != np.float32:
            raise ValueError(f"{name} dtype must be float32 (dlib descriptors), got {values.dtype}")
        if values.ndim == 2 and values.shape[1] != self.settings.dim:
            raise ValueError(f"{name} must have shape (n, {self.settings.dim}), got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError(f"{name} contains NaN or infinite values")


_Mapped = tuple[Rows | None, AnnoyPartition | None]


@dataclass(frozen=True, slots=True)
class _MappedPartitions:
    """A version's partitions, each as (rows searched exactly or None, Annoy index or None)."""

    stores: dict[int, _Mapped]
    regions: dict[int, _Mapped]
    everyone: _Mapped

    @staticmethod
    def of(version: MappedVersion, with_regions: bool) -> _MappedPartitions:
        manifest = version.manifest
        stores: dict[int, _Mapped] = {}
        for entry in manifest.stores:
            base = version.store_rows(entry)
            stores[entry.store] = (base, _mapped_annoy(version, entry.annoy, base.labels))
        regions: dict[int, _Mapped] = {}
        for region in manifest.regions if with_regions else ():
            members = [version.store_rows(e) for e in manifest.stores if e.region == region.region]
            dim = manifest.settings.dim
            if region.annoy is None:
                regions[region.region] = (Rows.concat(members, dim), None)
            else:
                labels = Labels.concat([m.labels for m in members])
                regions[region.region] = (None, _mapped_annoy(version, region.annoy, labels))
        annoy = _mapped_annoy(version, manifest.global_annoy, version.rows.labels)
        everyone = version.rows if annoy is None and version.rows.count else None
        return _MappedPartitions(stores, regions, (everyone, annoy))


def _mapped_annoy(
    version: MappedVersion, name: str | None, labels: Labels
) -> AnnoyPartition | None:
    if name is None:
        return None
    return AnnoyPartition(version.annoy[name], labels, version.annoy_path(name))


def _as_dict(report: RebuildReport) -> dict[str, int | float]:
    return {name: getattr(report, name) for name in report.__slots__}
