"""The gallery: customers' samples and templates, and the open-set decision about a visit.

Pure numpy, no database: the API's `Recognizer` keeps it in step with the database, and
`storesight-eval openset` drives the very same object, so what is measured is what runs.

* Every sample goes into the `RecognitionEngine` (partitioned Annoy indexes and exact
  buffers), which finds the customers near a visit quickly at any size.
* Every customer also has a **template**: the weighted mean of their samples (weight: the
  sample's quality, times `verified_weight` for verified ones). Decisions compare a visit with
  templates, not with the nearest of up to 20 samples: one odd sample no longer decides, and
  the more samples a customer has, the steadier their template.
* A **visit** is the shots of one face at the counter (or door), fused into one descriptor by
  their quality-weighted mean before anything is compared.
* `decide` walks the levels the engine searched (store, region, everyone), scores the nearest
  two customers' templates and accepts against the policy's size-dependent thresholds (see
  `cloud_api.recognition.policy`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cloud_api.recognition.engine import LevelHits, RecognitionEngine
from cloud_api.recognition.partitions import Level, SampleMeta
from cloud_api.recognition.policy import DecisionPolicy


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


@dataclass(slots=True)
class _Template:
    total: NDArray[np.float64]
    weight: float = 0.0
    stores: set[int] = field(default_factory=set)
    region_id: int = 0

    def vector(self) -> NDArray[np.float64]:
        return self.total / self.weight


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
    """Samples, templates and decisions; thread-safe like the engine it wraps."""

    def __init__(self, engine: RecognitionEngine, policy: DecisionPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self._lock = threading.Lock()
        self._templates: dict[int, _Template] = {}
        self._by_store: dict[int, set[int]] = {}
        self._by_region: dict[int, set[int]] = {}

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
        self.engine.add_many(np.asarray(sample_ids, dtype=np.int64), vectors, metas)
        with self._lock:
            for vector, meta, quality, sure in zip(
                vectors, metas, qualities, verified, strict=True
            ):
                weight = max(float(quality), 1e-3) * (self.policy.verified_weight if sure else 1.0)
                template = self._templates.get(meta.customer_id)
                if template is None:
                    template = self._templates[meta.customer_id] = _Template(
                        np.zeros(vector.shape[0], dtype=np.float64), region_id=meta.region_id
                    )
                template.total += weight * vector.astype(np.float64)
                template.weight += weight
                template.stores.add(meta.store_id)
                self._by_store.setdefault(meta.store_id, set()).add(meta.customer_id)
                self._by_region.setdefault(meta.region_id, set()).add(meta.customer_id)

    def remove(self, customer_id: int) -> None:
        """Never match this customer again (deletion); their samples leave at the next rebuild."""
        self.engine.remove_customer(customer_id)
        with self._lock:
            template = self._templates.pop(customer_id, None)
            if template is None:
                return
            for store in template.stores:
                self._by_store.get(store, set()).discard(customer_id)
            self._by_region.get(template.region_id, set()).discard(customer_id)

    def knows(self, customer_id: int) -> bool:
        """Whether the customer has a template (some face sample)."""
        with self._lock:
            return customer_id in self._templates

    def customers(self) -> int:
        with self._lock:
            return len(self._templates)

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
                "store": len(self._by_store.get(visit.store_id, ())),
                "region": len(self._by_region.get(visit.region_id, ())),
                "global": len(self._templates),
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
            found = [(c, self._templates[c].vector()) for c in order if c in self._templates]
        if not found:
            return []
        matrix = np.stack([v for _, v in found])
        distances = np.linalg.norm(matrix - fused.astype(np.float64), axis=1)
        ranked = sorted(zip((c for c, _ in found), distances.tolist(), strict=True), key=_second)
        return ranked


def _second(pair: tuple[int, float]) -> float:
    return pair[1]
