"""Append-only rows of descriptors searched exactly with numpy.

An `ExactBuffer` is both the "not yet indexed" buffer beside an immutable Annoy index and, for
a partition small enough to be searched exactly, the whole partition. Appends happen under the
engine's lock; readers take `buffer.rows` (one attribute read, no lock) and search that
immutable view while later appends write past its end or into freshly grown arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

#: Slack on squared distances computed as |x|^2 - 2 x.q + |q|^2 in float32, before the few
#: candidates are measured again directly; far above the rounding error for norms near 1.
_EXPANSION_SLACK = 1e-3


@dataclass(frozen=True, slots=True)
class Rows:
    """An immutable view of some rows: descriptors, their squared norms, ids and estimates."""

    vectors: F32  # (n, dim)
    sq_norms: F32  # (n,)
    sample_ids: I64
    customer_ids: I64
    genders: I8
    bands: I8

    @property
    def count(self) -> int:
        return len(self.sample_ids)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (
                self.vectors,
                self.sq_norms,
                self.sample_ids,
                self.customer_ids,
                self.genders,
                self.bands,
            )
        )

    def take(self, index: NDArray[np.intp] | slice) -> Rows:
        return Rows(
            self.vectors[index],
            self.sq_norms[index],
            self.sample_ids[index],
            self.customer_ids[index],
            self.genders[index],
            self.bands[index],
        )

    @staticmethod
    def empty(dim: int) -> Rows:
        return Rows(
            np.empty((0, dim), np.float32),
            np.empty(0, np.float32),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int8),
            np.empty(0, np.int8),
        )

    @staticmethod
    def concat(parts: list[Rows], dim: int) -> Rows:
        if not parts:
            return Rows.empty(dim)
        return Rows(
            np.concatenate([p.vectors for p in parts]),
            np.concatenate([p.sq_norms for p in parts]),
            np.concatenate([p.sample_ids for p in parts]),
            np.concatenate([p.customer_ids for p in parts]),
            np.concatenate([p.genders for p in parts]),
            np.concatenate([p.bands for p in parts]),
        )


def make_rows(vectors: F32, sample_ids: I64, customer_ids: I64, genders: I8, bands: I8) -> Rows:
    """Rows from already-validated arrays (the squared norms computed here)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    sq = np.einsum("ij,ij->i", vectors, vectors).astype(np.float32, copy=False)
    return Rows(vectors, sq, sample_ids, customer_ids, genders, bands)


@dataclass(frozen=True, slots=True)
class Hits:
    """Rows below a distance threshold, nearest first, with their exact distances."""

    distances: NDArray[np.float64]
    sample_ids: I64
    customer_ids: I64
    genders: I8
    bands: I8


def exact_hits(rows: Rows, start: int, query: F32, query_sq: float, threshold: float) -> Hits:
    """Every row from `start` on closer to `query` than `threshold`, sorted by distance.

    One matrix-vector product finds the few candidates (squared distances by expansion, with a
    little slack); their distances are then measured directly, so the cut at the threshold
    is exact.
    """
    vectors = rows.vectors[start:]
    if len(vectors) == 0:
        return _NO_HITS
    scores = vectors @ query
    scores *= -2.0
    scores += rows.sq_norms[start:]
    limit = threshold * threshold + _EXPANSION_SLACK - query_sq
    near = np.flatnonzero(scores < limit)
    if len(near) == 0:
        return _NO_HITS
    diff = vectors[near] - query
    distances = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    keep = distances < threshold
    near, distances = near[keep], distances[keep]
    order = np.argsort(distances, kind="stable")
    near = near[order] + start
    return Hits(
        distances[order],
        rows.sample_ids[near],
        rows.customer_ids[near],
        rows.genders[near],
        rows.bands[near],
    )


_NO_HITS = Hits(
    np.empty(0, np.float64),
    np.empty(0, np.int64),
    np.empty(0, np.int64),
    np.empty(0, np.int8),
    np.empty(0, np.int8),
)


def no_hits() -> Hits:
    return _NO_HITS


class ExactBuffer:
    """Growable rows; `rows` is always a consistent immutable view of what was appended.

    Not thread-safe for writers: the engine appends under its lock. Readers need no lock.
    """

    __slots__ = ("_dim", "_store", "_count", "rows")

    def __init__(self, dim: int, initial: Rows | None = None, spare: int = 0) -> None:
        self._dim = dim
        initial = initial if initial is not None else Rows.empty(dim)
        self._count = 0
        self._store = Rows.empty(dim)
        self.rows = self._store
        self._reserve(initial.count + spare)
        self._write(initial)

    @property
    def count(self) -> int:
        return self._count

    @property
    def capacity_bytes(self) -> int:
        return self._store.nbytes

    def append(self, new: Rows) -> None:
        if new.count == 0:
            return
        if self._count + new.count > self._store.count:
            self._reserve(max(2 * self._store.count, self._count + new.count, 64))
        self._write(new)

    def _write(self, new: Rows) -> None:
        lo, hi = self._count, self._count + new.count
        store = self._store
        store.vectors[lo:hi] = new.vectors
        store.sq_norms[lo:hi] = new.sq_norms
        store.sample_ids[lo:hi] = new.sample_ids
        store.customer_ids[lo:hi] = new.customer_ids
        store.genders[lo:hi] = new.genders
        store.bands[lo:hi] = new.bands
        self._count = hi
        # Publish last: readers holding the previous view never see rows past its end.
        self.rows = store.take(slice(0, hi))

    def _reserve(self, capacity: int) -> None:
        old = self._store
        grown = Rows(
            np.empty((capacity, self._dim), np.float32),
            np.empty(capacity, np.float32),
            np.empty(capacity, np.int64),
            np.empty(capacity, np.int64),
            np.empty(capacity, np.int8),
            np.empty(capacity, np.int8),
        )
        n = self._count
        grown.vectors[:n] = old.vectors[:n]
        grown.sq_norms[:n] = old.sq_norms[:n]
        grown.sample_ids[:n] = old.sample_ids[:n]
        grown.customer_ids[:n] = old.customer_ids[:n]
        grown.genders[:n] = old.genders[:n]
        grown.bands[:n] = old.bands[:n]
        self._store = grown
