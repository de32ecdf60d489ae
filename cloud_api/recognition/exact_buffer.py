"""Append-only rows of descriptors searched exactly with numpy.

An `ExactBuffer` is both the "not yet indexed" buffer beside an immutable Annoy index and, for
a partition small enough to be searched exactly, the whole partition. Appends happen under the
engine's lock; readers take `buffer.rows` (one attribute read, no lock) and search that
immutable view while later appends write past its end or into freshly grown arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

#: Slack on squared distances computed as |x|^2 - 2 x.q + |q|^2 in float32, before the few
#: candidates are measured again directly; far above the rounding error for norms near 1.
_EXPANSION_SLACK = 1e-3


@dataclass(frozen=True, slots=True)
class Labels:
    """Per row: which sample, whose, where enrolled, and the estimates recorded with it."""

    sample_ids: I64
    customer_ids: I64
    regions: I64
    genders: I8
    bands: I8

    def columns(self) -> tuple[NDArray[np.generic], ...]:
        return (self.sample_ids, self.customer_ids, self.regions, self.genders, self.bands)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.columns())

    def take(self, index: NDArray[np.intp] | slice) -> Labels:
        return Labels(
            self.sample_ids[index],
            self.customer_ids[index],
            self.regions[index],
            self.genders[index],
            self.bands[index],
        )

    @staticmethod
    def empty(count: int = 0) -> Labels:
        return Labels(
            np.empty(count, np.int64),
            np.empty(count, np.int64),
            np.empty(count, np.int64),
            np.empty(count, np.int8),
            np.empty(count, np.int8),
        )

    @staticmethod
    def concat(parts: list[Labels]) -> Labels:
        if not parts:
            return Labels.empty()
        return Labels(
            np.concatenate([p.sample_ids for p in parts]),
            np.concatenate([p.customer_ids for p in parts]),
            np.concatenate([p.regions for p in parts]),
            np.concatenate([p.genders for p in parts]),
            np.concatenate([p.bands for p in parts]),
        )


@dataclass(frozen=True, slots=True)
class Rows:
    """An immutable view of some rows: descriptors, their squared norms, and labels."""

    vectors: F32  # (n, dim)
    sq_norms: F32  # (n,)
    labels: Labels

    @property
    def count(self) -> int:
        return len(self.sq_norms)

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes + self.sq_norms.nbytes + self.labels.nbytes

    def take(self, index: NDArray[np.intp] | slice) -> Rows:
        return Rows(self.vectors[index], self.sq_norms[index], self.labels.take(index))

    @staticmethod
    def empty(dim: int, count: int = 0) -> Rows:
        return Rows(
            np.empty((count, dim), np.float32), np.empty(count, np.float32), Labels.empty(count)
        )

    @staticmethod
    def concat(parts: list[Rows], dim: int) -> Rows:
        if not parts:
            return Rows.empty(dim)
        return Rows(
            np.concatenate([p.vectors for p in parts]),
            np.concatenate([p.sq_norms for p in parts]),
            Labels.concat([p.labels for p in parts]),
        )

    def write(self, at: int, new: Rows) -> None:
        """Copy `new` into these (preallocated) rows from row `at` on."""
        end = at + new.count
        self.vectors[at:end] = new.vectors
        self.sq_norms[at:end] = new.sq_norms
        for mine, theirs in zip(self.labels.columns(), new.labels.columns(), strict=True):
            mine[at:end] = theirs


#: The columns of `Rows`, by name, with their types: how an index version stores rows.
ROW_DTYPES: dict[str, type[np.generic]] = {
    "vectors": np.float32,
    "sq_norms": np.float32,
    "sample_ids": np.int64,
    "customer_ids": np.int64,
    "regions": np.int64,
    "genders": np.int8,
    "bands": np.int8,
}


_LABELS = ("sample_ids", "customer_ids", "regions", "genders", "bands")


def row_columns(rows: Rows) -> dict[str, NDArray[np.generic]]:
    """`rows` as named columns (see ROW_DTYPES)."""
    columns = dict(zip(_LABELS, rows.labels.columns(), strict=True))
    return {"vectors": rows.vectors, "sq_norms": rows.sq_norms, **columns}


def rows_from_columns(columns: dict[str, NDArray[Any]]) -> Rows:
    """The inverse of `row_columns` (no copy: memory-mapped columns stay mapped)."""
    labels = Labels(*(columns[name] for name in _LABELS))
    return Rows(columns["vectors"], columns["sq_norms"], labels)


def make_rows(vectors: F32, labels: Labels) -> Rows:
    """Rows from already-validated arrays (the squared norms computed here)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    sq = np.einsum("ij,ij->i", vectors, vectors).astype(np.float32, copy=False)
    return Rows(vectors, sq, labels)


@dataclass(frozen=True, slots=True)
class Hits:
    """Samples closer than a threshold, nearest first, with their exact distances."""

    distances: NDArray[np.float64]
    labels: Labels

    def __len__(self) -> int:
        return len(self.distances)

    def merge(self, other: Hits) -> Hits:
        if len(other) == 0:
            return self
        if len(self) == 0:
            return other
        distances = np.concatenate([self.distances, other.distances])
        order = np.argsort(distances, kind="stable")
        return Hits(distances[order], Labels.concat([self.labels, other.labels]).take(order))


NO_HITS = Hits(np.empty(0, np.float64), Labels.empty())


def exact_hits(rows: Rows, start: int, query: F32, query_sq: float, threshold: float) -> Hits:
    """Every row from `start` on closer to `query` than `threshold`, sorted by distance.

    One matrix-vector product finds the few candidates (squared distances by expansion, with a
    little slack); their distances are then measured directly, so the cut at the threshold
    is exact.
    """
    vectors = rows.vectors[start:]
    if len(vectors) == 0:
        return NO_HITS
    scores = vectors @ query
    scores *= -2.0
    scores += rows.sq_norms[start:]
    limit = threshold * threshold + _EXPANSION_SLACK - query_sq
    near = np.flatnonzero(scores < limit)
    if len(near) == 0:
        return NO_HITS
    diff = vectors[near] - query
    distances = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    keep = distances < threshold
    near, distances = near[keep], distances[keep]
    order = np.argsort(distances, kind="stable")
    return Hits(distances[order], rows.labels.take(near[order] + start))


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
        hi = self._count + new.count
        self._store.write(self._count, new)
        self._count = hi
        # Publish last: readers holding the previous view never see rows past its end.
        self.rows = self._store.take(slice(0, hi))

    def _reserve(self, capacity: int) -> None:
        grown = Rows.empty(self._dim, capacity)
        grown.write(0, self._store.take(slice(0, self._count)))
        self._store = grown
