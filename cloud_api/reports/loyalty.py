"""Who comes back: new vs returning customers, visit frequency, retention of first-time
buyers, and VIP members' activity. A customer is new on the day of their first purchase in
the report's scope (the chain, a region or a store) and returning on any later day they buy;
over a period, a customer can be both (new on Monday, back on Friday). Staff are never
counted."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    Customer,
    Receipt,
    RollupBaskets,
    RollupBuyers,
    RollupCohorts,
    RollupCustomerFirst,
    RollupTraffic,
    Store,
)
from cloud_api.reports.common import (
    Table,
    Window,
    as_date,
    at_most_days_apart,
    day_text,
    in_store_period_buyers,
    money,
    not_staff,
    ratio,
    week_start_of,
)
from contract import Cell

FREQUENCY_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10+", 10, 1_000_000_000),
)


def _identified(w: Window) -> list[ColumnElement[bool]]:
    return [
        w.stores(Receipt.store_id),
        Receipt.customer_id.is_not(None),
        not_staff(Receipt.customer_id),
    ]


def customers(session: Session, w: Window) -> Table:
    """Per day from the buyers rollup of the filters' scope (and the hourly rollup's
    anonymous purchases); the period's distinct returning customers from the receipts."""
    scope, scope_id = w.store_scope()
    found = {
        day_text(d): (int(n), int(r))
        for d, n, r in session.execute(
            select(
                RollupBuyers.day, RollupBuyers.new_customers, RollupBuyers.returning_customers
            ).where(
                RollupBuyers.scope == scope,
                RollupBuyers.scope_id == scope_id,
                w.on_days(RollupBuyers.day),
            )
        )
    }
    anonymous = {
        day_text(d): int(a or 0)
        for d, a in session.execute(
            select(RollupTraffic.day, func.sum(RollupTraffic.anonymous))
            .where(w.on_days(RollupTraffic.day), w.stores(RollupTraffic.store_id))
            .group_by(RollupTraffic.day)
        )
    }
    rows: list[list[Cell]] = []
    for d in w.days:
        new, returning = found.get(d.isoformat(), (0, 0))
        rows.append([d.isoformat(), new, returning, anonymous.get(d.isoformat(), 0)])
    first = RollupCustomerFirst
    day = w.day(Receipt.scanned_at)
    totals = session.execute(
        select(
            func.count(case((day != w.day(first.first_at), Receipt.customer_id)).distinct()),
            func.count(Receipt.customer_id.distinct()),
        )
        .select_from(Receipt)
        .join(
            first,
            and_(
                first.scope == scope,
                first.scope_id == (Receipt.store_id if scope == "store" else scope_id),
                first.customer_id == Receipt.customer_id,
            ),
        )
        .where(w.in_range(Receipt.scanned_at), *_identified(w))
    ).one()
    returning_total, buyers = int(totals[0]), int(totals[1])
    pushed_buyers, pushed_returning = in_store_period_buyers(session, w)
    returning_total += pushed_returning
    buyers += pushed_buyers
    new_total = sum(int(r[1] or 0) for r in rows)
    summary: dict[str, Cell] = {
        "new_customers": new_total,
        "returning_customers": returning_total,
        "anonymous_transactions": sum(int(r[3] or 0) for r in rows),
        "buyers": buyers,
        "returning_share": ratio(returning_total, buyers),
    }
    return ["date", "new_customers", "returning_customers", "anonymous_transactions"], rows, summary


def frequency(session: Session, w: Window) -> Table:
    per_customer = (
        select(
            func.count().label("purchases"),
            func.sum(Receipt.total).label("revenue"),
        )
        .where(w.in_range(Receipt.scanned_at), *_identified(w))
        .group_by(Receipt.customer_id)
        .subquery("per_customer")
    )
    bucket = case(
        *[
            (and_(per_customer.c.purchases >= low, per_customer.c.purchases <= high), label)
            for label, low, high in FREQUENCY_BUCKETS
        ],
        else_="10+",
    )
    found = {
        str(b): (int(n), money(rev))
        for b, n, rev in session.execute(
            select(bucket, func.count(), func.sum(per_customer.c.revenue)).group_by(bucket)
        )
    }
    total = sum(n for n, _ in found.values())
    rows: list[list[Cell]] = []
    for label, _, _ in FREQUENCY_BUCKETS:
        count, revenue = found.get(label, (0, 0.0))
        rows.append([label, count, ratio(count, total), revenue])
    purchases = session.scalar(
        select(func.count()).where(w.in_range(Receipt.scanned_at), *_identified(w))
    )
    summary: dict[str, Cell] = {
        "customers": total,
        "purchases_per_customer": ratio(int(purchases or 0), total, 2),
        "repeat_share": ratio(total - found.get("1", (0, 0.0))[0], total),
    }
    return ["purchases", "customers", "share", "revenue"], rows, summary


def retention(session: Session, w: Window) -> Table:
    """First-time buyers in the window, by the week of their first purchase (weeks start on
    Monday), and how many bought again within `days` days of it. A cohort whose `days` have
    not all passed by the last purchase on record is marked incomplete."""
    days = w.param("days", 30, 1, 365)
    scope, scope_id = w.store_scope()
    first = RollupCustomerFirst
    cohort_week = week_start_of(w.dialect, first.first_at)
    came_back = case(
        (
            and_(
                first.second_at.is_not(None),
                at_most_days_apart(w.dialect, first.first_at, first.second_at, days),
            ),
            1,
        ),
        else_=0,
    )
    query = (
        select(cohort_week, func.count(), func.sum(came_back))
        .where(
            first.scope == scope,
            first.scope_id == scope_id,
            w.in_range(first.first_at),
        )
        .group_by(cohort_week)
    )
    last_purchase = session.scalar(
        select(func.max(Receipt.scanned_at)).where(w.stores(Receipt.store_id))
    )
    cohorts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for monday, n, back in session.execute(query):
        cohorts[as_date(monday)] = [int(n), int(back or 0)]
    seen = _aware(last_purchase) if last_purchase is not None else None
    horizon = _in_store_cohorts(session, w, days, cohorts, seen) or w.end
    rows: list[list[Cell]] = []
    for week in sorted(cohorts):
        buyers, returned = cohorts[week]
        week_end = datetime.combine(week + timedelta(days=7), datetime.min.time(), tzinfo=UTC)
        complete = week_end + timedelta(days=days) <= horizon
        rows.append([week.isoformat(), buyers, returned, ratio(returned, buyers), int(complete)])
    buyers_total = sum(c[0] for c in cohorts.values())
    returned_total = sum(c[1] for c in cohorts.values())
    summary: dict[str, Cell] = {
        "days": days,
        "first_time_buyers": buyers_total,
        "returned": returned_total,
        "retention_rate": ratio(returned_total, buyers_total),
    }
    columns = ["cohort_week", "first_time_buyers", "returned", "retention_rate", "complete"]
    return columns, rows, summary


def _in_store_cohorts(
    session: Session,
    w: Window,
    days: int,
    cohorts: dict[date, list[int]],
    horizon: datetime | None,
) -> datetime | None:
    """Add the in-store stores' first-time buyers (counts their store servers sent: their
    customers are known only in their store, so a first purchase there is one in the region
    and the chain too) to `cohorts`; the horizon moved to the end of their last day with
    sales, if later."""
    in_store = select(Store.id).where(Store.mode == "store")
    rows = session.execute(
        select(RollupCohorts.day, RollupCohorts.gap_days, func.sum(RollupCohorts.customers))
        .where(
            RollupCohorts.store_id.in_(in_store),
            w.stores(RollupCohorts.store_id),
            w.on_days(RollupCohorts.day),
        )
        .group_by(RollupCohorts.day, RollupCohorts.gap_days)
    ).all()
    for day, gap, customers in rows:
        first = as_date(day)
        cohort = cohorts[first - timedelta(days=first.weekday())]
        cohort[0] += int(customers)
        if 0 <= int(gap) <= days:
            cohort[1] += int(customers)
    if not rows:
        return horizon
    last_day = session.scalar(
        select(func.max(RollupBaskets.day)).where(
            RollupBaskets.store_id.in_(in_store), w.stores(RollupBaskets.store_id)
        )
    )
    if last_day is None:
        return horizon
    end = datetime.combine(as_date(last_day), datetime.min.time(), tzinfo=UTC)
    end += timedelta(days=1)
    return end if horizon is None else max(horizon, end)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def vip(session: Session, w: Window) -> Table:
    query = (
        select(
            Customer.vip_number,
            Customer.name,
            Customer.level,
            func.count(Receipt.id),
            func.sum(Receipt.total),
            func.max(Receipt.scanned_at),
        )
        .join(Receipt, Receipt.customer_id == Customer.id)
        .where(
            Customer.vip_number.is_not(None),
            Customer.consent_at.is_not(None),
            Customer.is_staff.is_(False),
            w.in_range(Receipt.scanned_at),
            w.stores(Receipt.store_id),
        )
        .group_by(Customer.id, Customer.vip_number, Customer.name, Customer.level)
        .order_by(func.sum(Receipt.total).desc(), Customer.vip_number)
    )
    rows: list[list[Cell]] = [
        [number, name, level, int(visits), money(spend), _aware(last).isoformat()]
        for number, name, level, visits, spend, last in session.execute(query)
    ]
    revenue = session.scalar(
        select(func.sum(Receipt.total)).where(
            w.in_range(Receipt.scanned_at), w.stores(Receipt.store_id)
        )
    )
    vip_revenue = sum(float(r[4] or 0) for r in rows)
    summary: dict[str, Cell] = {
        "active_members": len(rows),
        "member_visits": sum(int(r[3] or 0) for r in rows),
        "member_revenue": round(vip_revenue, 2),
        "member_revenue_share": ratio(vip_revenue, float(revenue or 0)),
    }
    return ["vip_number", "name", "level", "visits", "spend", "last_visit"], rows, summary
