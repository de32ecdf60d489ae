"""Who came in and who bought: daily traffic and conversion, the hourly heat map, and the
age and gender of visitors and buyers. Staff are never counted."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    Customer,
    Receipt,
    RollupBuyers,
    RollupTraffic,
    RollupVisitorSegments,
)
from cloud_api.reports.common import (
    REPORT_AGE_BANDS,
    UNKNOWN,
    Table,
    Window,
    age_band,
    as_date,
    day_text,
    in_store_period_buyers,
    not_staff,
    ratio,
)
from contract import Cell


def _purchases(w: Window) -> list[ColumnElement[bool]]:
    return [
        w.in_range(Receipt.scanned_at),
        w.stores(Receipt.store_id),
        not_staff(Receipt.customer_id),
    ]


def traffic(session: Session, w: Window) -> Table:
    """Visitors and transactions from the hourly rollup; distinct buyers per day from the
    buyers rollup of the filters' scope; the period's distinct buyers from the receipts."""
    visitors: dict[str, int] = defaultdict(int)
    transactions: dict[str, int] = defaultdict(int)
    for value, seen, sold in session.execute(
        select(
            RollupTraffic.day,
            func.sum(RollupTraffic.visitors),
            func.sum(RollupTraffic.transactions),
        )
        .where(w.on_days(RollupTraffic.day), w.stores(RollupTraffic.store_id))
        .group_by(RollupTraffic.day)
    ):
        visitors[day_text(value)] = int(seen or 0)
        transactions[day_text(value)] = int(sold or 0)
    scope, scope_id = w.store_scope()
    buyers = {
        day_text(d): int(n)
        for d, n in session.execute(
            select(RollupBuyers.day, RollupBuyers.buyers).where(
                RollupBuyers.scope == scope,
                RollupBuyers.scope_id == scope_id,
                w.on_days(RollupBuyers.day),
            )
        )
    }
    rows: list[list[Cell]] = []
    for d in w.days:
        key = d.isoformat()
        rows.append(
            [
                key,
                visitors[key],
                transactions[key],
                buyers.get(key, 0),
                ratio(transactions[key], visitors[key]),
            ]
        )
    total_visitors = sum(visitors.values())
    total_transactions = sum(transactions.values())
    distinct_buyers = (
        session.scalar(select(func.count(Receipt.customer_id.distinct())).where(*_purchases(w)))
        or 0
    )
    distinct_buyers += in_store_period_buyers(session, w)[0]
    summary: dict[str, Cell] = {
        "visitors": total_visitors,
        "transactions": total_transactions,
        "buyers": int(distinct_buyers or 0),
        "conversion": ratio(total_transactions, total_visitors),
    }
    return ["date", "visitors", "transactions", "buyers", "conversion"], rows, summary


def heatmap(session: Session, w: Window) -> Table:
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    query = (
        select(
            RollupTraffic.day,
            RollupTraffic.hour,
            func.sum(RollupTraffic.visitors),
            func.sum(RollupTraffic.transactions),
        )
        .where(w.on_days(RollupTraffic.day), w.stores(RollupTraffic.store_id))
        .group_by(RollupTraffic.day, RollupTraffic.hour)
    )
    for day, hour, seen, sold in session.execute(query):
        cell = cells[(as_date(day).weekday(), int(hour))]
        cell[0] += int(seen or 0)
        cell[1] += int(sold or 0)
    rows: list[list[Cell]] = [
        [d, h, cells[(d, h)][0], cells[(d, h)][1]] for d in range(7) for h in range(24)
    ]
    busiest = max(rows, key=lambda r: (int(r[2] or 0), int(r[3] or 0)))
    summary: dict[str, Cell] = {
        "busiest_weekday": busiest[0],
        "busiest_hour": busiest[1],
        "visitors": sum(int(r[2] or 0) for r in rows),
        "transactions": sum(int(r[3] or 0) for r in rows),
    }
    return ["weekday", "hour", "visitors", "transactions"], rows, summary


def demographics(session: Session, w: Window) -> Table:
    """Visitors: entrance sightings (unidentified ones are 'unknown'). Buyers: distinct
    identified customers who bought, plus each anonymous purchase as one unknown buyer."""
    band = age_band(Customer.age_years)
    gender = func.coalesce(Customer.gender, UNKNOWN)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for b, g, count in session.execute(
        select(
            RollupVisitorSegments.age_band,
            RollupVisitorSegments.gender,
            func.sum(RollupVisitorSegments.visitors),
        )
        .where(w.on_days(RollupVisitorSegments.day), w.stores(RollupVisitorSegments.store_id))
        .group_by(RollupVisitorSegments.age_band, RollupVisitorSegments.gender)
    ):
        counts[(str(b), str(g))][0] += int(count or 0)
    buyers = (
        select(band, gender, func.count(Receipt.customer_id.distinct()))
        .select_from(Receipt)
        .join(Customer, Customer.id == Receipt.customer_id)
        .where(*_purchases(w))
        .group_by(band, gender)
    )
    for b, g, count in session.execute(buyers):
        counts[(str(b), str(g))][1] += int(count)
    anonymous = session.scalar(
        select(func.sum(RollupTraffic.anonymous)).where(
            w.on_days(RollupTraffic.day), w.stores(RollupTraffic.store_id)
        )
    )
    counts[(UNKNOWN, UNKNOWN)][1] += int(anonymous or 0)
    order = [label for label, _, _ in REPORT_AGE_BANDS] + [UNKNOWN]
    genders = ["female", "male", UNKNOWN]
    rows: list[list[Cell]] = [
        [b, g, counts[(b, g)][0], counts[(b, g)][1]]
        for b in order
        for g in genders
        if (b, g) in counts
    ]
    identified_visitors = sum(v for (b, g), (v, _) in counts.items() if g != UNKNOWN)
    female_visitors = sum(v for (b, g), (v, _) in counts.items() if g == "female")
    summary: dict[str, Cell] = {
        "visitors": sum(v for v, _ in counts.values()),
        "buyers": sum(b for _, b in counts.values()),
        "female_share_of_identified_visitors": ratio(female_visitors, identified_visitors),
    }
    return ["age_band", "gender", "visitors", "buyers"], rows, summary
