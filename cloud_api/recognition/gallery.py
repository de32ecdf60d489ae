"""The gallery: customers' samples and templates, and the open-set decision about a visit.

Pure numpy, no database: the API's `Recognizer` keeps it in step with the database, and
`storesight-eval openset` drives the very same object, so what is measured is what runs.

* Every sample goes into the `RecognitionEngine` (partitioned Annoy indexes and exact
  buffers), which finds the customers near a visit quickly at any size.
* Every customer also has a **template**: the weighted mean of their samples (weight: the
  sample's quality, times `verified_weight` for verified ones). Decisions compare a visit with
  templates, not with the nearest of up to 20 samples: one odd sample no longer decides, and
  the more samples a customer has, the steadier their template.
* Templates live in a `TemplateTable` when the engine maps an index version (every
  customer's as of the version, memory-mapped and shared between processes) and in this
  process's own `Template`s for customers with samples added since; `adopt` moves both the
  engine and the templates to a newer version, `snapshot` is what the next version holds.
* A **visit** is the shots of one face at the counter (or door), fused into one descriptor by
  their quality-weighted mean before anything is compared.
* `decide` walks the levels the engine searched (store, region, everyone), scores the nearest
  two customers' templates and accepts against the policy's size-dependent thresholds (see
  `cloud_api.recognition.policy`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cloud_api.recognition.engine import EngineSnapshot, LevelHits, RecognitionEngine
from cloud_api.recognition.index_versions import MappedVersion
from cloud_api.recognition.partitions import Level, SampleMeta
from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.recognition.templates import Template, TemplateTable


@dataclass(frozen=True, slots=True)
class Shot:
    """One descriptor of a visit and the kiosk's quality score for it."""

    vector: NDArray[np.float32]
    quality: float


@dataclass(frozen=True, slots=True)
class Visit:
    """A face seen once, at a store: its shots and what the cloud estimated about it."""

    shots: Sequence[Shot]
    region_id: int
    store_id: int
    age_years: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer a visit resembles: template distance, margin score, where and among how many."""

    customer_id: int
    distance: float
    score: float
    level: Level
    searched: int  # customers in the partition searched


@dataclass(frozen=True, slots=True)
class Decision:
    """What the face alone says about a visit.

    `member`: close enough to show this customer's card with personal details.
    `returning`: close enough to link the visit to this customer's profile (anonymous or not).
    `nearest`: the closest customer found, accepted or not (rank 1; None when nobody was near).
    `child`: estimated under the policy's age limit: neither matched nor to be enrolled.
    """

    member: Candidate | None = None
    returning: Candidate | None = None
    nearest: Candidate | None = None
    child: bool = False

    @property
    def possible_member(self) -> Candidate | None:
        """Linked, but not sure enough to show who: the cashier asks."""
        if self.returning is not None and self.member is None:
            return self.returning
        return None


def fuse(shots: Sequence[Shot]) -> NDArray[np.float32]:
    """The quality-weighted mean of a visit's descriptors."""
    if not shots:
        raise ValueError("a visit needs at least one shot")
    vectors = np.stack([np.asarray(s.vector, dtype=np.float64) for s in shots])
    weights = np.array([max(float(s.quality), 1e-3) for s in shots])
    fused: NDArray[np.float32] = ((weights[:, None] * vectors).sum(axis=0) / weights.sum()).astype(
        np.float32
    )
    return fused


class Gallery:
    """Samples, templates and decisions; thread-safe like the engine it wraps.

    Templates come from two places: the `TemplateTable` of the index version the engine maps
    (read-only, shared by every process mapping it; empty until one is adopted) and this
    process's own `Template`s for customers with samples added since (their table row folded
    in). `adopt` moves to a newer version: the table is replaced and the overlay rebuilt from
    the samples the version does not hold yet. Removed customers are remembered (`_gone`):
    their table rows are never used again.
    """

    def __init__(self, engine: RecognitionEngine, policy: DecisionPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self._lock = threading.Lock()  # guards the state below; held for short steps only
        self._writing = threading.Lock()  # one add, remove, adopt or snapshot at a time
        self._table = TemplateTable.empty(engine.settings.dim)
        self._overlay: dict[int, Template] = {}
        self._gone: set[int] = set()
        self._store_region: dict[int, int] = {}
        self._customers = 0
        self._per_store: dict[int, int] = {}
        self._per_region: dict[int, int] = {}
        self._weights = _SampleWeights()  # of the samples added since the table

    # ---- enrolling and forgetting ----------------------------------------------------------

    def add_samples(
        self,
        sample_ids: Sequence[int],
        vectors: NDArray[np.float32],
        metas: Sequence[SampleMeta],
        qualities: Sequence[float],
        verified: Sequence[bool],
    ) -> None:
        """Index samples and fold them into their customers' templates (all or none)."""
        if not (len(sample_ids) == len(vectors) == len(metas) == len(qualities) == len(verified)):
            raise ValueError("sample_ids, vectors, metas, qualities and verified differ in length")
        ids = np.asarray(sample_ids, dtype=np.int64)
        with self._writing:
            self.engine.add_many(ids, vectors, metas)
            weights = [
                max(float(quality), 1e-3) * (self.policy.verified_weight if sure else 1.0)
                for quality, sure in zip(qualities, verified, strict=True)
            ]
            with self._lock:
                self._weights.append(ids, weights)
                for vector, meta, weight in zip(vectors, metas, weights, strict=True):
                    self._store_region[meta.store_id] = meta.region_id
                    self._fold(meta.customer_id, meta.store_id, vector, weight)

    def _fold(self, customer: int, store: int, vector: NDArray[np.float32], weight: float) -> None:
        """Add one sample to its customer's template and the counts (under the lock)."""
        template = self._overlay.get(customer)
        if template is None:
            row = self._table.find(customer) if customer not in self._gone else -1
            if row >= 0:
                template = self._table.template(row)
            else:
                template = Template(np.zeros(vector.shape[0], dtype=np.float64))
                self._customers += 1
            self._overlay[customer] = template
        template.total += weight * vector.astype(np.float64)
        template.weight += weight
        if store not in template.stores:
            region = self._store_region[store]
            if region not in {self._store_region[s] for s in template.stores}:
                self._per_region[region] = self._per_region.get(region, 0) + 1
            template.stores.add(store)
            self._per_store[store] = self._per_store.get(store, 0) + 1

    def remove(self, customer_id: int) -> None:
        """Never match this customer again (deletion); their samples leave at the next rebuild."""
        with self._writing:
            self.engine.remove_customer(customer_id)
            with self._lock:
                if customer_id in self._gone:
                    return
                self._gone.add(customer_id)
                template = self._overlay.pop(customer_id, None)
                row = self._table.find(customer_id) if template is None else -1
                stores = (
                    template.stores
                    if template is not None
                    else self._table.stores_of(row)
                    if row >= 0
                    else None
                )
                if stores is None:
                    return
                self._customers -= 1
                for store in stores:
                    self._per_store[store] -= 1
                for region in {self._store_region[s] for s in stores}:
                    self._per_region[region] -= 1

    def knows(self, customer_id: int) -> bool:
        """Whether the customer has a template (some face sample)."""
        with self._lock:
            if customer_id in self._overlay:
                return True
            return customer_id not in self._gone and self._table.find(customer_id) >= 0

    def customers(self) -> int:
        with self._lock:
            return self._customers

    # ---- index versions --------------------------------------------------------------------

    def snapshot(self) -> tuple[EngineSnapshot, TemplateTable]:
        """What a new index version holds: the engine's rows and every template, taken at
        one instant (no sample is added or customer removed in between)."""
        with self._writing:  # templates change only under it: read them without the lock
            engine = self.engine.snapshot()
            return engine, self._table.merged(self._overlay, self._gone)

    def adopt(self, version: MappedVersion) -> int:
        """Serve from `version` from now on (see `RecognitionEngine.adopt`); the templates of
        customers with samples it lacks are rebuilt over its table. Returns the samples kept
        beyond the version."""
        with self._writing:
            kept = self.engine.adopt(version)
            with self._lock:
                self._table = version.templates
                self._overlay = {}
                self._store_region.update(version.store_regions)
                for store, rows in kept.items():
                    self._store_region.setdefault(store, int(rows.labels.regions[0]))
                self._customers, self._per_store, self._per_region = self._table.counts(
                    self._store_region, self._gone
                )
                ids = [rows.labels.sample_ids for rows in kept.values()]
                self._weights = self._weights.only(
                    np.concatenate(ids) if ids else np.empty(0, np.int64)
                )
                for store, rows in kept.items():
                    weights = self._weights.of(rows.labels.sample_ids)
                    customers = rows.labels.customer_ids.tolist()
                    for vector, customer, weight in zip(
                        rows.vectors, customers, weights, strict=True
                    ):
                        self._fold(customer, store, vector, weight)
        return sum(rows.count for rows in kept.values())

    # ---- deciding --------------------------------------------------------------------------

    def decide(self, visit: Visit, *, exclude: Iterable[int] = ()) -> Decision:
        """What the face of `visit` says; `exclude`: customers not to propose (rejected)."""
        policy = self.policy
        if policy.is_child(visit.age_years):
            return Decision(child=True)
        fused = fuse(visit.shots)
        levels = self.engine.neighbours(
            fused,
            region_id=visit.region_id,
            store_id=visit.store_id,
            radius=policy.search_radius,
            count=policy.neighbours,
        )
        excluded = set(exclude)
        sized = self._sizes(levels, visit)
        shares = max(1, len(sized))
        nearest: Candidate | None = None
        for hits, customers in sized:
            ranked = self._ranked(fused, hits, excluded)
            if not ranked:
                continue
            best, d1 = ranked[0]
            score = policy.score(d1, [d for _, d in ranked[1:]])
            candidate = Candidate(best, d1, score, hits.level, customers)
            if nearest is None or d1 < nearest.distance:
                nearest = candidate
            shots = len(visit.shots)
            if score < policy.threshold(customers, policy.returning_fpir / shares, shots=shots):
                member = shots >= policy.member_min_shots and score < policy.threshold(
                    customers, policy.member_fpir / shares, shots=shots
                )
                return Decision(
                    member=candidate if member else None, returning=candidate, nearest=candidate
                )
        return Decision(nearest=nearest)

    def _sizes(self, levels: list[LevelHits], visit: Visit) -> list[tuple[LevelHits, int]]:
        """Each level searched with its number of customers; a level with no more customers
        than the one before it holds the same ones and is left out."""
        with self._lock:
            counts = {
                "store": self._per_store.get(visit.store_id, 0),
                "region": self._per_region.get(visit.region_id, 0),
                "global": self._customers,
            }
        out: list[tuple[LevelHits, int]] = []
        previous = 0
        for hits in levels:
            customers = counts.get(hits.level, counts["global"])
            if customers <= previous:
                continue
            previous = customers
            out.append((hits, customers))
        return out

    def _ranked(
        self, fused: NDArray[np.float32], hits: LevelHits, excluded: set[int]
    ) -> list[tuple[int, float]]:
        """The customers among `hits` by template distance, nearest first."""
        order: dict[int, None] = {}
        for customer in hits.customer_ids.tolist():
            if customer not in excluded:
                order.setdefault(customer, None)
                if len(order) >= self.policy.neighbours:
                    break
        if not order:
            return []
        with self._lock:
            found = [(c, v) for c in order if (v := self._vector(c)) is not None]
        if not found:
            return []
        matrix = np.stack([v for _, v in found])
        distances = np.linalg.norm(matrix - fused.astype(np.float64), axis=1)
        ranked = sorted(zip((c for c, _ in found), distances.tolist(), strict=True), key=_second)
        return ranked

    def _vector(self, customer: int) -> NDArray[np.float64] | None:
        template = self._overlay.get(customer)
        if template is not None:
            return template.vector()
        if customer in self._gone:
            return None
        row = self._table.find(customer)
        return self._table.vector(row) if row >= 0 else None


class _SampleWeights:
    """The template weight of each sample added since the table (growable arrays): what
    `Gallery.adopt` needs to fold the samples a new version lacks into its templates."""

    __slots__ = ("_ids", "_weights", "_count")

    def __init__(self) -> None:
        self._ids = np.empty(64, np.int64)
        self._weights = np.empty(64, np.float64)
        self._count = 0

    def append(self, ids: NDArray[np.int64], weights: list[float]) -> None:
        end = self._count + len(ids)
        if end > len(self._ids):
            size = max(2 * len(self._ids), end)
            self._ids = np.resize(self._ids, size)
            self._weights = np.resize(self._weights, size)
        self._ids[self._count : end] = ids
        self._weights[self._count : end] = weights
        self._count = end

    def only(self, ids: NDArray[np.int64]) -> _SampleWeights:
        """Those of `ids` only (the samples a new version lacks)."""
        keep = np.flatnonzero(np.isin(self._ids[: self._count], ids))
        out = _SampleWeights()
        out.append(self._ids[keep], self._weights[keep].tolist())
        return out

    def of(self, ids: NDArray[np.int64]) -> list[float]:
        """The weights of `ids` (every one appended before)."""
        order = np.argsort(self._ids[: self._count], kind="stable")
        at = order[np.searchsorted(self._ids[: self._count], ids, sorter=order)]
        weights: list[float] = self._weights[at].tolist()
        return weights


def _second(pair: tuple[int, float]) -> float:
    return pair[1]
