"""What a store server sends head office: aggregates of one store's days, nothing personal.

A store in in-store mode keeps faces, customers and receipts in the store. Head office gets,
per store-day, the same report rollups it computes for its own stores: counts and sums keyed
by hour, product, category, age band and gender. No field can hold a descriptor, a crop, a
customer id, a name, a VIP number or a receipt: every row model lists exactly its columns
(`extra="forbid"`) and bounds each one.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BasketRow",
    "BuyersRow",
    "CategoryRow",
    "CohortRow",
    "SalesRow",
    "SegmentSalesRow",
    "TrafficRow",
    "UpstreamAck",
    "UpstreamDay",
    "UpstreamPush",
    "VisitorSegmentRow",
    "MAX_UPSTREAM_DAYS",
]

#: days in one push: a store offline for weeks catches up in several pushes
MAX_UPSTREAM_DAYS = 7

Count = Annotated[int, Field(ge=0, le=10**9)]
Amount = Annotated[Decimal, Field(ge=-(10**13), le=10**13, max_digits=16, decimal_places=3)]
Money = Annotated[Decimal, Field(ge=-(10**13), le=10**13, max_digits=16, decimal_places=2)]
Label = Annotated[str, Field(max_length=8)]
Category = Annotated[str, Field(max_length=100)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrafficRow(_Row):
    hour: Annotated[int, Field(ge=0, le=23)]
    visitors: Count
    transactions: Count
    anonymous: Count


class SalesRow(_Row):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Amount
    revenue: Money
    receipts: Count


class CategoryRow(_Row):
    category: Category
    quantity: Amount
    revenue: Money
    receipts: Count


class BasketRow(_Row):
    transactions: Count
    revenue: Money
    items: Amount


class VisitorSegmentRow(_Row):
    gender: Label
    age_band: Label
    visitors: Count


class SegmentSalesRow(_Row):
    gender: Label
    age_band: Label
    category: Category
    revenue: Money


class BuyersRow(_Row):
    """Distinct buyers of the day in the store: first-time buyers there and returning ones
    (in-store customers exist only in their store, so these are also the chain's figures)."""

    buyers: Count
    new_customers: Count
    returning_customers: Count


class CohortRow(_Row):
    """First-time buyers of the day (in the store) who bought again `gap_days` days later
    (the time between the two purchases, rounded up to whole days; -1: not yet)."""

    gap_days: Annotated[int, Field(ge=-1, le=100_000)]
    customers: Count


class UpstreamDay(_Row):
    """Every rollup row of one store-day: the day's slice at head office is replaced by it
    (an empty list empties that table's slice)."""

    day: date
    traffic: Annotated[list[TrafficRow], Field(max_length=24)] = []
    sales: Annotated[list[SalesRow], Field(max_length=20_000)] = []
    categories: Annotated[list[CategoryRow], Field(max_length=2_000)] = []
    baskets: Annotated[list[BasketRow], Field(max_length=1)] = []
    visitor_segments: Annotated[list[VisitorSegmentRow], Field(max_length=200)] = []
    segment_sales: Annotated[list[SegmentSalesRow], Field(max_length=20_000)] = []
    buyers: Annotated[list[BuyersRow], Field(max_length=1)] = []
    cohorts: Annotated[list[CohortRow], Field(max_length=5_000)] = []

    @model_validator(mode="after")
    def _unique_keys(self) -> UpstreamDay:
        for name, key in _KEYS.items():
            rows: list[_Row] = getattr(self, name)
            seen = [tuple(getattr(row, column) for column in key) for row in rows]
            if len(set(seen)) != len(seen):
                raise ValueError(f"{name}: two rows for the same {', '.join(key)}")
        return self


#: the columns that identify a row within a store-day, per table
_KEYS: dict[str, tuple[str, ...]] = {
    "traffic": ("hour",),
    "sales": ("sku",),
    "categories": ("category",),
    "visitor_segments": ("gender", "age_band"),
    "segment_sales": ("gender", "age_band", "category"),
    "cohorts": ("gap_days",),
}


class UpstreamPush(_Row):
    """PUT /v1/upstream/days: some of the calling store server's days, each replacing what
    head office holds for it (so a push repeated after a lost answer changes nothing)."""

    days: Annotated[list[UpstreamDay], Field(min_length=1, max_length=MAX_UPSTREAM_DAYS)]

    @model_validator(mode="after")
    def _one_entry_per_day(self) -> UpstreamPush:
        days = [d.day for d in self.days]
        if len(set(days)) != len(days):
            raise ValueError("days: the same day twice in one push")
        return self


class UpstreamAck(_Row):
    store_code: str
    days: list[date]
