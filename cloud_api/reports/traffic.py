"""Who came in and who bought: daily traffic and conversion, the hourly heat map, and the
age and gender of visitors and buyers. Staff are never counted."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, Receipt, Sighting
from cloud_api.reports.common import (
    AGE_BANDS,
    UNKNOWN,
    Window,
    age_band,
    day_text,
    not_staff,
    ratio,
)
from contract import Cell

Table = tuple[list[str], list[list[Cell]], dict[str, Cell]]


def _visitors(w: Window) -> list[ColumnElement[bool]]:
    return [w.in_range(Sighting.at), w.stores(Sighting.store_id), not_staff(Sighting.customer_id)]


def _purchases(w: Window) -> list[ColumnElement[bool]]:
    return [
        w.in_range(Receipt.scanned_at),
        w.stores(Receipt.store_id),
        not_staff(Receipt.customer_id),
    ]


def traffic(session: Session, w: Window) -> Table:
    visitors: dict[str, int] = defaultdict(int)
    day = w.day(Sighting.at)
    for value, count in session.execute(
        select(day, func.count()).where(*_visitors(w)).group_by(day)
    ):
        visitors[day_text(value)] = int(count)
    sales: dict[str, tuple[int, int]] = {}
    day = w.day(Receipt.scanned_at)
    for value, count, buyers in session.execute(
        select(day, func.count(), func.count(Receipt.customer_id.distinct()))
        .where(*_purchases(w))
        .group_by(day)
    ):
        sales[day_text(value)] = (int(count), int(buyers))
    rows: list[list[Cell]] = []
    for d in w.days:
        key = d.isoformat()
        transactions, buyers = sales.get(key, (0, 0))
        rows.append([key, visitors[key], transactions, buyers, ratio(transactions, visitors[key])])
    total_visitors = sum(visitors.values())
    total_transactions = sum(t for t, _ in sales.values())
    distinct_buyers = session.scalar(
        select(func.count(Receipt.customer_id.distinct())).where(*_purchases(w))
    )
    summary: dict[str, Cell] = {
        "visitors": total_visitors,
        "transactions": total_transactions,
        "buyers": int(distinct_buyers or 0),
        "conversion": ratio(total_transactions, total_visitors),
    }
    return ["date", "visitors", "transactions", "buyers", "conversion"], rows, summary


def heatmap(session: Session, w: Window) -> Table:
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for column, table, conditions, at in (
        (0, Sighting, _visitors(w), Sighting.at),
        (1, Receipt, _purchases(w), Receipt.scanned_at),
    ):
        weekday, hour = w.weekday(at), w.hour(at)
        query = (
            select(weekday, hour, func.count())
            .select_from(table)
            .where(*conditions)
            .group_by(weekday, hour)
        )
        for day_of_week, hour_of_day, count in session.execute(query):
            cells[(int(day_of_week), int(hour_of_day))][column] = int(count)
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
    visitors = (
        select(band, gender, func.count())
        .select_from(Sighting)
        .join(Customer, Customer.id == Sighting.customer_id)
        .where(*_visitors(w))
        .group_by(band, gender)
    )
    for b, g, count in session.execute(visitors):
        counts[(str(b), str(g))][0] += int(count)
    unidentified = session.scalar(
        select(func.count()).where(*_visitors(w), Sighting.customer_id.is_(None))
    )
    counts[(UNKNOWN, UNKNOWN)][0] += int(unidentified or 0)
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
        select(func.count()).where(*_purchases(w), Receipt.customer_id.is_(None))
    )
    counts[(UNKNOWN, UNKNOWN)][1] += int(anonymous or 0)
    order = [label for label, _, _ in AGE_BANDS] + [UNKNOWN]
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
