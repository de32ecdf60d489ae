"""Customers' templates: a read-only table as of an index version, and what changed since.

A template is the weighted sum of a customer's samples (`total`, `weight`: the mean is
`total / weight`) and the stores they have samples at. An index version carries every
customer's template as a `TemplateTable`: sorted arrays that every process maps read-only
from the version's files, so a thousand customers cost a process nothing it does not share.
What arrives after the version (new samples, new customers) lives in a process's own
`Template` objects, laid over the table by the `Gallery`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(slots=True)
class Template:
    """One customer's weighted sum of samples and where they were taken (mutable)."""

    total: F64
    weight: float = 0.0
    stores: set[int] = field(default_factory=set)

    def vector(self) -> F64:
        return self.total / self.weight


@dataclass(frozen=True, slots=True)
class TemplateTable:
    """Every customer's template at one index version, sorted by customer id.

    `stores[store_offsets[i]:store_offsets[i + 1]]` are customer i's stores. The arrays are
    never written to (they are memory-mapped from a version's files in the API processes).
    """

    customer_ids: I64  # (C,) sorted
    totals: F64  # (C, dim)
    weights: F64  # (C,)
    store_offsets: I64  # (C + 1,)
    stores: I64  # (sum of stores per customer,)

    ARRAYS = ("customer_ids", "totals", "weights", "store_offsets", "stores")

    def __len__(self) -> int:
        return len(self.customer_ids)

    @staticmethod
    def empty(dim: int) -> TemplateTable:
        return TemplateTable(
            np.empty(0, np.int64),
            np.empty((0, dim), np.float64),
            np.empty(0, np.float64),
            np.zeros(1, np.int64),
            np.empty(0, np.int64),
        )

    def find(self, customer: int) -> int:
        """The row of `customer`, or -1."""
        i = int(np.searchsorted(self.customer_ids, customer))
        return i if i < len(self.customer_ids) and self.customer_ids[i] == customer else -1

    def stores_of(self, row: int) -> list[int]:
        lo, hi = int(self.store_offsets[row]), int(self.store_offsets[row + 1])
        return [int(s) for s in self.stores[lo:hi]]

    def vector(self, row: int) -> F64:
        vector: F64 = self.totals[row] / self.weights[row]
        return vector

    def template(self, row: int) -> Template:
        """A mutable copy of one row."""
        return Template(
            np.array(self.totals[row], dtype=np.float64),
            float(self.weights[row]),
            set(self.stores_of(row)),
        )

    def merged(self, overlay: Mapping[int, Template], gone: Iterable[int]) -> TemplateTable:
        """A new table: these rows, replaced by `overlay`'s where it has them, without `gone`."""
        dim = self.totals.shape[1]
        gone_ids = np.fromiter(gone, np.int64)
        changed = np.fromiter(overlay.keys(), np.int64, len(overlay))
        keep = ~np.isin(self.customer_ids, np.concatenate([gone_ids, changed]))
        lengths = np.diff(self.store_offsets)
        kept_stores = self.stores[np.repeat(keep, lengths)]
        dropped = set(gone_ids.tolist())
        new = [(c, t) for c, t in overlay.items() if c not in dropped]
        ids = np.concatenate([self.customer_ids[keep], np.array([c for c, _ in new], np.int64)])
        totals = np.concatenate(
            [self.totals[keep], np.array([t.total for _, t in new], np.float64).reshape(-1, dim)]
        )
        weights = np.concatenate([self.weights[keep], np.array([t.weight for _, t in new])])
        new_stores = [sorted(t.stores) for _, t in new]
        all_lengths = np.concatenate(
            [lengths[keep], np.array([len(s) for s in new_stores], np.int64)]
        )
        all_stores = np.concatenate(
            [kept_stores, np.array([s for group in new_stores for s in group], np.int64)]
        )
        order = np.argsort(ids, kind="stable")
        starts = np.concatenate([[0], np.cumsum(all_lengths)[:-1]]).astype(np.int64)
        sorted_lengths = all_lengths[order]
        offsets = np.concatenate([[0], np.cumsum(sorted_lengths)]).astype(np.int64)
        # each sorted row's stores, gathered from where its row sat before sorting
        gather = np.repeat(starts[order] - offsets[:-1], sorted_lengths) + np.arange(offsets[-1])
        return TemplateTable(
            ids[order].astype(np.int64),
            totals[order],
            weights[order].astype(np.float64),
            offsets,
            all_stores[gather].astype(np.int64),
        )

    def counts(
        self, store_region: Mapping[int, int], gone: Iterable[int]
    ) -> tuple[int, dict[int, int], dict[int, int]]:
        """Customers in the table but not `gone`: how many, per store and per region."""
        alive = ~np.isin(self.customer_ids, np.fromiter(gone, np.int64))
        lengths = np.diff(self.store_offsets)
        owners = np.repeat(np.arange(len(self.customer_ids)), lengths)
        live_pairs = alive[owners]
        stores = self.stores[live_pairs]
        store_ids, store_counts = np.unique(stores, return_counts=True)
        per_store = dict(zip(store_ids.tolist(), store_counts.tolist(), strict=True))
        regions = np.fromiter((store_region[s] for s in stores.tolist()), np.int64, len(stores))
        pairs = np.unique(np.stack([owners[live_pairs], regions], axis=1), axis=0)
        region_ids, region_counts = np.unique(pairs[:, 1], return_counts=True)
        per_region = dict(zip(region_ids.tolist(), region_counts.tolist(), strict=True))
        return int(alive.sum()), per_store, per_region
