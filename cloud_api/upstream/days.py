"""One store-day's report rollups as an `UpstreamDay`: read on the store server, stored at
head office. The table-to-field mapping lives here only, so the two sides cannot drift."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    Base,
    RollupBaskets,
    RollupBuyers,
    RollupCategories,
    RollupSales,
    RollupSegmentSales,
    RollupTraffic,
    RollupVisitorSegments,
)
from contract import (
    BasketRow,
    BuyersRow,
    CategoryRow,
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
    return UpstreamDay(**fields)


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
