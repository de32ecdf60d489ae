"""One store-day's report rollups as an `UpstreamDay`: read on the store server, stored at
head office. The table-to-field mapping lives here only, so the two sides cannot drift."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    Base,
    RollupBaskets,
    RollupBuyers,
    RollupCategories,
    RollupCohorts,
    RollupCustomerFirst,
    RollupSales,
    RollupSegmentSales,
    RollupTraffic,
    RollupVisitorSegments,
)
from contract import (
    BasketRow,
    BuyersRow,
    CategoryRow,
    CohortRow,
    SalesRow,
    SegmentSalesRow,
    TrafficRow,
    UpstreamDay,
    VisitorSegmentRow,
)

#: UpstreamDay field -> (rollup table keyed by store_id and day, the wire row)
DAY_TABLES: dict[str, tuple[type[Base], type[Any]]] = {
    "traffic": (RollupTraffic, TrafficRow),
    "sales": (RollupSales, SalesRow),
    "categories": (RollupCategories, CategoryRow),
    "baskets": (RollupBaskets, BasketRow),
    "visitor_segments": (RollupVisitorSegments, VisitorSegmentRow),
    "segment_sales": (RollupSegmentSales, SegmentSalesRow),
}
_BUYER_COLUMNS = tuple(BuyersRow.model_fields)


def _columns(row_model: type[Any]) -> tuple[str, ...]:
    return tuple(row_model.model_fields)


def read_day(session: Session, store_id: int, day: date) -> UpstreamDay:
    """Every rollup row of the store-day (store server side)."""
    fields: dict[str, Any] = {"day": day}
    for name, (table, row_model) in DAY_TABLES.items():
        columns = _columns(row_model)
        rows = session.execute(
            select(*(getattr(table, c) for c in columns))
            .where(table.store_id == store_id, table.day == day)  # type: ignore[attr-defined]
            .order_by(*(getattr(table, c) for c in columns))
        ).all()
        fields[name] = [row_model(**dict(zip(columns, row, strict=True))) for row in rows]
    buyers = session.execute(
        select(*(getattr(RollupBuyers, c) for c in _BUYER_COLUMNS)).where(
            RollupBuyers.scope == "store",
            RollupBuyers.scope_id == store_id,
            RollupBuyers.day == day,
        )
    ).all()
    fields["buyers"] = [BuyersRow(**dict(zip(_BUYER_COLUMNS, r, strict=True))) for r in buyers]
    fields["cohorts"] = _cohorts(session, store_id, day)
    return UpstreamDay(**fields)


def _cohorts(session: Session, store_id: int, day: date) -> list[CohortRow]:
    """The store's first-time buyers of `day` by how many days later they bought again,
    from its customers' first purchases in the store (ids stay here: only counts leave)."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    first = RollupCustomerFirst
    gaps: Counter[int] = Counter()
    for first_at, second_at in session.execute(
        select(first.first_at, first.second_at).where(
            first.scope == "store",
            first.scope_id == store_id,
            first.first_at >= start,
            first.first_at < start + timedelta(days=1),
        )
    ):
        gaps[cohort_gap(first_at, second_at)] += 1
    return [CohortRow(gap_days=g, customers=n) for g, n in sorted(gaps.items())]


def cohort_gap(first_at: datetime, second_at: datetime | None) -> int:
    """Days between a first and a second purchase, rounded up (-1: no second yet): bought
    again within N days exactly when this is at most N, as the retention report counts."""
    if second_at is None:
        return -1
    return math.ceil((second_at - first_at).total_seconds() / 86_400)


def replace_day(session: Session, store_id: int, upstream: UpstreamDay) -> None:
    """Make head office's rollups of the store-day exactly `upstream` (delete + insert, in
    the caller's transaction): the same day sent twice leaves the same rows."""
    day = upstream.day
    for name, (table, _row_model) in DAY_TABLES.items():
        session.execute(
            delete(table).where(table.store_id == store_id, table.day == day)  # type: ignore[attr-defined]
        )
        rows = [
            {"store_id": store_id, "day": day, **row.model_dump()}
            for row in getattr(upstream, name)
        ]
        if rows:
            session.execute(insert(table), rows)
    session.execute(
        delete(RollupBuyers).where(
            RollupBuyers.scope == "store",
            RollupBuyers.scope_id == store_id,
            RollupBuyers.day == day,
        )
    )
    if upstream.buyers:
        session.execute(
            insert(RollupBuyers),
            [
                {"scope": "store", "scope_id": store_id, "day": day, **row.model_dump()}
                for row in upstream.buyers
            ],
        )
    session.execute(
        delete(RollupCohorts).where(RollupCohorts.store_id == store_id, RollupCohorts.day == day)
    )
    if upstream.cohorts:
        session.execute(
            insert(RollupCohorts),
            [{"store_id": store_id, "day": day, **row.model_dump()} for row in upstream.cohorts],
        )
