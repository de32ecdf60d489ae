"""Report rollups: per store and day aggregates the reports read instead of scanning every
receipt, line item and sighting (a year of a chain is millions of rows).

They are derived data, rebuilt from the base tables at will:

- `rebuild(session)` recomputes everything (after a bulk load: `storesight-cloud seed`).
- `refresh(session)` takes in what arrived since the last refresh: the store-days of new
  receipts and sightings (found by id, re-reading the last `LOOK_BACK_IDS` ids, since ids can
  commit out of order) and the store-days marked dirty, and recomputes just those slices;
  many slices at once fall back to a full rebuild.
- `customers_changed(session, ids)` marks customers' store-days dirty and recomputes their
  first purchases: after a deletion or a change of staff status.
- `ensure_fresh(sessions)` is what a report calls first: one refresh at a time per process
  (and on PostgreSQL per database, under an advisory lock).

Every slice is recomputed by delete + insert-select from the base tables, so recomputing a
slice twice is harmless. Staff are left out of the visitor and buyer rollups and kept in the
sales ones (their purchases are sales).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

import structlog
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.exc import DataError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import (
    Customer,
    LineItem,
    Receipt,
    RollupBaskets,
    RollupBuyers,
    RollupCategories,
    RollupCustomerFirst,
    RollupDirty,
    RollupSales,
    RollupSegmentSales,
    RollupState,
    RollupTraffic,
    RollupVisitorSegments,
    Sighting,
    Store,
    utcnow,
)
from cloud_api.db.session import is_store_server
from cloud_api.reports.common import UNKNOWN, age_band, as_date, day_of, hour_of, not_staff
from cloud_api.upstream.outbox import mark_pending

log = structlog.get_logger(__name__)

#: How far below the newest receipt and sighting ids already read a refresh looks again.
LOOK_BACK_IDS = 50
#: above this many store-days to recompute, one full rebuild is quicker
FULL_REBUILD_SLICES = 300
ADVISORY_LOCK = 7_031_001
SCOPES = ("store", "region", "chain")
#: the rollups keyed by store and day (recomputed per store-day slice)
DAY_TABLES = (
    RollupTraffic,
    RollupSales,
    RollupCategories,
    RollupBaskets,
    RollupVisitorSegments,
    RollupSegmentSales,
)
_process_lock = threading.Lock()


#: stores whose rollups arrive from their own store server (head office's view of in-store
#: stores): head office never recomputes, nor deletes, their rollups
UPSTREAM_STORES = select(Store.id).where(Store.mode == "store").scalar_subquery()


@dataclass(frozen=True)
class Slice:
    """One store's day: None for every store / every day (a full rebuild). `local_only`:
    leave out the in-store stores (head office; see UPSTREAM_STORES)."""

    store_id: int | None = None
    day: date | None = None
    local_only: bool = False

    def bounds(self) -> tuple[datetime, datetime | None] | None:
        """The day's first instant and the next day's (None after the last day there is)."""
        if self.day is None:
            return None
        start = datetime.combine(self.day, clock(0), tzinfo=UTC)
        end = start + timedelta(days=1) if self.day < date.max else None
        return start, end

    def on(self, store_column: Any, at_column: Any) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if self.store_id is not None:
            conditions.append(store_column == self.store_id)
        if self.local_only:
            conditions.append(store_column.not_in(UPSTREAM_STORES))
        bounds = self.bounds()
        if bounds is not None:
            conditions.append(at_column >= bounds[0])
            if bounds[1] is not None:
                conditions.append(at_column < bounds[1])
        return and_(true(), *conditions)


@dataclass(frozen=True)
class RefreshStats:
    mode: str  # "none" | "slices" | "full"
    slices: int
    customers: int
    seconds: float


# ---- store-day rollups -------------------------------------------------------------------


def _traffic(dialect: str, part: Slice) -> Select[Any]:
    visits = select(
        Sighting.store_id.label("store_id"),
        day_of(dialect, Sighting.at).label("day"),
        hour_of(dialect, Sighting.at).label("hour"),
        literal_column("1").label("v"),
        literal_column("0").label("t"),
        literal_column("0").label("a"),
    ).where(part.on(Sighting.store_id, Sighting.at), not_staff(Sighting.customer_id))
    sales = select(
        Receipt.store_id,
        day_of(dialect, Receipt.scanned_at),
        hour_of(dialect, Receipt.scanned_at),
        literal_column("0"),
        literal_column("1"),
        case((Receipt.customer_id.is_(None), 1), else_=0),
    ).where(part.on(Receipt.store_id, Receipt.scanned_at), not_staff(Receipt.customer_id))
    both = union_all(visits, sales).subquery("both")
    return select(
        both.c.store_id,
        both.c.day,
        both.c.hour,
        func.sum(both.c.v),
        func.sum(both.c.t),
        func.sum(both.c.a),
    ).group_by(both.c.store_id, both.c.day, both.c.hour)


def _sales(dialect: str, part: Slice, key: Any) -> Select[Any]:
    day = day_of(dialect, LineItem.sold_at)
    return (
        select(
            LineItem.store_id,
            day,
            key,
            func.sum(LineItem.quantity),
            func.sum(LineItem.quantity * LineItem.unit_price),
            func.count(LineItem.receipt_id.distinct()),
        )
        .where(part.on(LineItem.store_id, LineItem.sold_at))
        .group_by(LineItem.store_id, day, key)
    )


def _baskets(dialect: str, part: Slice) -> Select[Any]:
    receipts = select(
        Receipt.store_id.label("store_id"),
        day_of(dialect, Receipt.scanned_at).label("day"),
        literal_column("1").label("t"),
        Receipt.total.label("revenue"),
        cast(literal_column("0"), LineItem.quantity.type).label("items"),
    ).where(part.on(Receipt.store_id, Receipt.scanned_at))
    lines = select(
        LineItem.store_id,
        day_of(dialect, LineItem.sold_at),
        literal_column("0"),
        cast(literal_column("0"), Receipt.total.type),
        LineItem.quantity,
    ).where(part.on(LineItem.store_id, LineItem.sold_at))
    both = union_all(receipts, lines).subquery("both")
    return select(
        both.c.store_id,
        both.c.day,
        func.sum(both.c.t),
        func.sum(both.c.revenue),
        func.sum(both.c["items"]),
    ).group_by(both.c.store_id, both.c.day)


def _segments(dialect: str, part: Slice) -> Select[Any]:
    day = day_of(dialect, Sighting.at)
    gender = func.coalesce(Customer.gender, UNKNOWN)
    band = age_band(Customer.age_years)
    return (
        select(Sighting.store_id, day, gender, band, func.count())
        .select_from(Sighting)
        .outerjoin(Customer, Customer.id == Sighting.customer_id)
        .where(part.on(Sighting.store_id, Sighting.at), not_staff(Sighting.customer_id))
        .group_by(Sighting.store_id, day, gender, band)
    )


def _segment_sales(dialect: str, part: Slice) -> Select[Any]:
    day = day_of(dialect, LineItem.sold_at)
    gender = func.coalesce(Customer.gender, UNKNOWN)
    band = age_band(Customer.age_years)
    return (
        select(
            LineItem.store_id,
            day,
            gender,
            band,
            LineItem.category,
            func.sum(LineItem.quantity * LineItem.unit_price),
        )
        .select_from(LineItem)
        .join(Customer, Customer.id == LineItem.customer_id)
        .where(part.on(LineItem.store_id, LineItem.sold_at), Customer.is_staff.is_(False))
        .group_by(LineItem.store_id, day, gender, band, LineItem.category)
    )


def _store_days(session: Session, dialect: str, part: Slice) -> None:
    store_server = is_store_server(session)
    # a store server queues the days it held before (they may empty out) and after
    changed = _stored_days(session, part) if store_server else set()
    for table in DAY_TABLES:
        clear = delete(table)
        if part.store_id is not None:
            clear = clear.where(table.store_id == part.store_id)
        if part.day is not None:
            clear = clear.where(table.day == part.day)
        if part.local_only:
            clear = clear.where(table.store_id.not_in(UPSTREAM_STORES))
        session.execute(clear)
    traffic = ["store_id", "day", "hour", "visitors", "transactions", "anonymous"]
    sales = ["store_id", "day", "sku", "quantity", "revenue", "receipts"]
    categories = ["store_id", "day", "category", "quantity", "revenue", "receipts"]
    baskets = ["store_id", "day", "transactions", "revenue", "items"]
    segments = ["store_id", "day", "gender", "age_band", "visitors"]
    segment_sales = ["store_id", "day", "gender", "age_band", "category", "revenue"]
    for table, columns, query in (
        (RollupTraffic, traffic, _traffic(dialect, part)),
        (RollupSales, sales, _sales(dialect, part, LineItem.sku)),
        (RollupCategories, categories, _sales(dialect, part, LineItem.category)),
        (RollupBaskets, baskets, _baskets(dialect, part)),
        (RollupVisitorSegments, segments, _segments(dialect, part)),
        (RollupSegmentSales, segment_sales, _segment_sales(dialect, part)),
    ):
        session.execute(insert(table).from_select(columns, query))
    if store_server:
        mark_pending(session, changed | _stored_days(session, part))


def _first_days(session: Session, dialect: str, customers: list[int]) -> set[tuple[int, date]]:
    """The (store, day) of these customers' first purchase in each store."""
    first = RollupCustomerFirst
    found: set[tuple[int, date]] = set()
    for start in range(0, len(customers), 500):
        chunk = customers[start : start + 500]
        found |= _days(
            session.execute(
                select(first.scope_id, day_of(dialect, first.first_at))
                .where(first.scope == "store", first.customer_id.in_(chunk))
                .distinct()
            )
        )
    return found


def stored_days(session: Session, store_id: int) -> set[tuple[int, date]]:
    """Every (store, day) pair the day tables hold for one store."""
    return _stored_days(session, Slice(store_id))


def _stored_days(session: Session, part: Slice) -> set[tuple[int, date]]:
    """The (store, day) pairs the day tables hold within `part` (a store server's: its
    changed days, to queue for head office)."""
    if part.store_id is not None and part.day is not None:
        return {(part.store_id, part.day)}
    found: set[tuple[int, date]] = set()
    for table in DAY_TABLES:
        query = select(table.store_id, table.day).distinct()
        if part.store_id is not None:
            query = query.where(table.store_id == part.store_id)
        if part.day is not None:
            query = query.where(table.day == part.day)
        found |= _days(session.execute(query))
    return found


# ---- customers' first purchases and buyers -----------------------------------------------


def _scope_key(scope: str) -> Any:
    """A receipt's id in `scope` (its store, its store's region, or 0 for the chain); the
    queries using it join Store on the receipt's store."""
    if scope == "store":
        return Receipt.store_id
    if scope == "region":
        return Store.region_id
    return literal_column("0")


def _firsts(customers: list[int] | None) -> Iterable[Select[Any]]:
    """(scope, scope id, customer, first, second purchase) for every scope."""
    for scope in SCOPES:
        scope_id = _scope_key(scope)
        ranked = (
            select(
                scope_id.label("scope_id"),
                Receipt.customer_id.label("customer_id"),
                Receipt.scanned_at.label("at"),
                func.row_number()
                .over(
                    partition_by=(Receipt.customer_id,)
                    if scope == "chain"
                    else (Receipt.customer_id, scope_id),
                    order_by=(Receipt.scanned_at, Receipt.id),
                )
                .label("n"),
            )
            .select_from(Receipt)
            .join(Store, Store.id == Receipt.store_id)
            .where(Receipt.customer_id.is_not(None), not_staff(Receipt.customer_id))
        )
        if customers is not None:
            ranked = ranked.where(Receipt.customer_id.in_(customers))
        r = ranked.subquery("ranked")
        group = (r.c.customer_id,) if scope == "chain" else (r.c.scope_id, r.c.customer_id)
        yield (
            select(
                literal_column(f"'{scope}'"),
                literal_column("0") if scope == "chain" else r.c.scope_id,
                r.c.customer_id,
                func.min(case((r.c.n == 1, r.c.at))),
                func.min(case((r.c.n == 2, r.c.at))),
            )
            .where(r.c.n <= 2)
            .group_by(*group)
        )


def _recompute_firsts(session: Session, customers: list[int] | None) -> None:
    columns = ["scope", "scope_id", "customer_id", "first_at", "second_at"]
    if customers is None:
        session.execute(delete(RollupCustomerFirst))
        for query in _firsts(None):
            session.execute(insert(RollupCustomerFirst).from_select(columns, query))
        return
    for start in range(0, len(customers), 500):
        chunk = customers[start : start + 500]
        session.execute(
            delete(RollupCustomerFirst).where(RollupCustomerFirst.customer_id.in_(chunk))
        )
        for query in _firsts(chunk):
            session.execute(insert(RollupCustomerFirst).from_select(columns, query))


def _buyers(
    dialect: str, scope: str, scope_id: int | None, day: date | None, *, local_only: bool = False
) -> Select[Any]:
    first = RollupCustomerFirst
    purchase_day = day_of(dialect, Receipt.scanned_at)
    key = _scope_key(scope)
    buyers = func.count(Receipt.customer_id.distinct())
    new = func.count(
        case((day_of(dialect, first.first_at) == purchase_day, Receipt.customer_id)).distinct()
    )
    scope_key = literal_column("0") if scope == "chain" else key
    query = (
        select(
            literal_column(f"'{scope}'").label("scope"),
            scope_key.label("scope_id"),
            purchase_day.label("day"),
            buyers.label("buyers"),
            new.label("new_customers"),
            (buyers - new).label("returning_customers"),
        )
        .select_from(Receipt)
        .join(Store, Store.id == Receipt.store_id)
        .join(
            first,
            and_(
                first.scope == scope,
                first.scope_id == key,
                first.customer_id == Receipt.customer_id,
            ),
        )
        .group_by(purchase_day)
    )
    if scope != "chain":
        query = query.group_by(key)
    if scope_id is not None and scope != "chain":
        query = query.where(key == scope_id)
    if day is not None:
        part = Slice(None, day)
        query = query.where(part.on(Receipt.store_id, Receipt.scanned_at))
    if local_only and scope == "store":
        query = query.where(Receipt.store_id.not_in(UPSTREAM_STORES))
    if local_only and scope != "store":
        query = _with_upstream_buyers(query, scope, scope_id, day)
    return query


def _with_upstream_buyers(
    local: Select[Any], scope: str, scope_id: int | None, day: date | None
) -> Select[Any]:
    """Head office's region and chain buyers: its own stores' (`local`) plus the in-store
    stores' day figures as their store servers sent them. Their customers are known only in
    their store, so they are distinct people, and their first purchase in the store is their
    first in the region and the chain: the figures add up."""
    pushed = RollupBuyers
    key: Any = literal_column("0") if scope == "chain" else Store.region_id
    upstream = (
        select(
            literal_column(f"'{scope}'").label("scope"),
            key.label("scope_id"),
            pushed.day,
            pushed.buyers,
            pushed.new_customers,
            pushed.returning_customers,
        )
        .select_from(pushed)
        .join(Store, Store.id == pushed.scope_id)
        .where(pushed.scope == "store", Store.mode == "store")
    )
    if scope_id is not None and scope != "chain":
        upstream = upstream.where(Store.region_id == scope_id)
    if day is not None:
        upstream = upstream.where(pushed.day == day)
    c = list(union_all(local, upstream).subquery().c)
    return select(c[0], c[1], c[2], func.sum(c[3]), func.sum(c[4]), func.sum(c[5])).group_by(
        c[0], c[1], c[2]
    )


def _recompute_buyers(
    session: Session, dialect: str, scope: str, scope_id: int | None, day: date | None
) -> None:
    query = delete(RollupBuyers).where(RollupBuyers.scope == scope)
    if scope_id is not None:
        query = query.where(RollupBuyers.scope_id == scope_id)
    local_only = not is_store_server(session)
    if scope == "store" and local_only:  # in-store stores' buyers arrive from upstream
        query = query.where(RollupBuyers.scope_id.not_in(UPSTREAM_STORES))
    if day is not None:
        query = query.where(RollupBuyers.day == day)
    session.execute(query)
    columns = ["scope", "scope_id", "day", "buyers", "new_customers", "returning_customers"]
    session.execute(
        insert(RollupBuyers).from_select(
            columns, _buyers(dialect, scope, scope_id, day, local_only=local_only)
        )
    )


# ---- quarantine ------------------------------------------------------------------------

#: keys of slices whose recomputation failed, logged once per process
_quarantined: set[str] = set()


def _isolated(session: Session, key: str, work: Any) -> bool:
    """Run `work()` in a savepoint; if stored data makes it fail, roll just that back, log
    the key once (never the data) and go on: one bad row must not stop every report."""
    try:
        with session.begin_nested():
            work()
    except (ArithmeticError, ValueError, TypeError, DataError, StatementError) as error:
        if isinstance(error, OperationalError):  # the database itself: not a bad row
            raise
        if key not in _quarantined:
            _quarantined.add(key)
            log.error("rollup_slice_quarantined", slice=key, error=type(error).__name__)
        return False
    return True


def quarantined() -> set[str]:
    """The slices this process could not recompute (for tests and operators)."""
    return set(_quarantined)


def _days(rows: Iterable[Any]) -> set[tuple[int, date]]:
    """(store, day) pairs from query rows; a value that is no date is logged and skipped."""
    found: set[tuple[int, date]] = set()
    for store_id, day in rows:
        try:
            found.add((int(store_id), as_date(day)))
        except (ArithmeticError, ValueError, TypeError):
            key = f"store {store_id} day {str(day)[:32]!r}"
            if key not in _quarantined:
                _quarantined.add(key)
                log.error("rollup_slice_quarantined", slice=key, error="not a date")
    return found


# ---- refresh -----------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _high_water(session: Session) -> tuple[int, int]:
    receipts = session.scalar(select(func.max(Receipt.id))) or 0
    sightings = session.scalar(select(func.max(Sighting.id))) or 0
    return int(receipts), int(sightings)


def _save_state(session: Session, receipts: int, sightings: int) -> None:
    state = session.get(RollupState, 1)
    if state is None:
        session.add(
            RollupState(id=1, receipt_id=receipts, sighting_id=sightings, refreshed_at=utcnow())
        )
    else:
        state.receipt_id, state.sighting_id, state.refreshed_at = receipts, sightings, utcnow()


def rebuild(session: Session) -> RefreshStats:
    """Recompute every rollup from the base tables (in the caller's transaction)."""
    started = time.perf_counter()
    dialect = _dialect(session)
    receipts, sightings = _high_water(session)
    local_only = not is_store_server(session)
    everything = Slice(local_only=local_only)
    if not _isolated(session, "all store-days", lambda: _store_days(session, dialect, everything)):
        # some store-day's data cannot be aggregated: do them one by one, skipping those
        for store_id, day in sorted(_all_store_days(session, dialect)):
            part = Slice(store_id, day, local_only=local_only)
            _isolated(session, _key(part), lambda p=part: _store_days(session, dialect, p))
    _isolated(session, "first purchases", lambda: _recompute_firsts(session, None))
    for scope in SCOPES:
        _isolated(
            session,
            f"buyers {scope}",
            lambda s=scope: _recompute_buyers(session, dialect, s, None, None),
        )
    session.execute(delete(RollupDirty))
    _save_state(session, receipts, sightings)
    stats = RefreshStats("full", 0, 0, time.perf_counter() - started)
    log.info("rollups_rebuilt", seconds=round(stats.seconds, 2), receipts_to=receipts)
    return stats


def refresh(session: Session) -> RefreshStats:
    """Take in what arrived since the last refresh (in the caller's transaction)."""
    started = time.perf_counter()
    dialect = _dialect(session)
    state = session.get(RollupState, 1)
    high = _high_water(session)
    dirty = list(session.execute(select(RollupDirty.store_id, RollupDirty.day)))
    if state is None:
        return rebuild(session)
    if (state.receipt_id, state.sighting_id) == high and not dirty:
        return RefreshStats("none", 0, 0, time.perf_counter() - started)
    since_receipt = max(0, state.receipt_id - LOOK_BACK_IDS)
    since_sighting = max(0, state.sighting_id - LOOK_BACK_IDS)
    receipt_day = day_of(dialect, Receipt.scanned_at)
    sighting_day = day_of(dialect, Sighting.at)
    count = session.scalar(select(func.count()).where(Receipt.id > since_receipt)) or 0
    if count > FULL_REBUILD_SLICES * 20:
        return rebuild(session)
    slices = _days(dirty)
    slices |= _days(
        session.execute(
            select(Receipt.store_id, receipt_day).where(Receipt.id > since_receipt).distinct()
        )
    )
    slices |= _days(
        session.execute(
            select(Sighting.store_id, sighting_day).where(Sighting.id > since_sighting).distinct()
        )
    )
    if len(slices) > FULL_REBUILD_SLICES:
        return rebuild(session)
    customers = sorted(
        int(c or 0)
        for c in session.scalars(
            select(Receipt.customer_id)
            .where(Receipt.id > since_receipt, Receipt.customer_id.is_not(None))
            .distinct()
        )
    )
    _isolated(session, "first purchases", lambda: _recompute_firsts(session, customers))
    if is_store_server(session):  # their first days' cohorts (sent upstream) may change
        mark_pending(session, _first_days(session, dialect, customers))
    regions = dict(session.execute(select(Store.id, Store.region_id)).all())
    scopes: set[tuple[str, int, date]] = set()
    local_only = not is_store_server(session)
    for store_id, day in sorted(slices):
        part = Slice(store_id, day, local_only=local_only)
        _isolated(session, _key(part), lambda p=part: _store_days(session, dialect, p))
        scopes |= {("store", store_id, day), ("region", regions[store_id], day), ("chain", 0, day)}
    for scope, scope_id, day in sorted(scopes):
        _isolated(
            session,
            f"buyers {scope} {scope_id} {day}",
            lambda a=scope, b=scope_id, c=day: _recompute_buyers(session, dialect, a, b, c),
        )
    session.execute(delete(RollupDirty))
    _save_state(session, *high)
    stats = RefreshStats("slices", len(slices), len(customers), time.perf_counter() - started)
    log.info(
        "rollups_refreshed",
        slices=stats.slices,
        customers=stats.customers,
        seconds=round(stats.seconds, 3),
    )
    return stats


def _key(part: Slice) -> str:
    return f"store {part.store_id} day {part.day}"


def _all_store_days(session: Session, dialect: str) -> set[tuple[int, date]]:
    found: set[tuple[int, date]] = set()
    for store, at in (
        (Receipt.store_id, Receipt.scanned_at),
        (Sighting.store_id, Sighting.at),
        (LineItem.store_id, LineItem.sold_at),
    ):
        found |= _days(session.execute(select(store, day_of(dialect, at)).distinct()))
    return found


def mark_dirty(session: Session, days: Iterable[tuple[int, date]]) -> None:
    """These store-days are recomputed at the next refresh (and their region's and the
    chain's buyers with them)."""
    known = _days(session.execute(select(RollupDirty.store_id, RollupDirty.day)))
    for store_id, day in sorted(set(days) - known):
        session.add(RollupDirty(store_id=store_id, day=day))
    session.flush()


def customers_changed(session: Session, customer_ids: list[int]) -> None:
    """These customers' store-days are recomputed at the next refresh, and their first
    purchases now (call before their receipts are unlinked, when deleting them)."""
    dialect = _dialect(session)
    days: set[tuple[int, date]] = set()
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        days |= _days(
            session.execute(
                select(Receipt.store_id, day_of(dialect, Receipt.scanned_at))
                .where(Receipt.customer_id.in_(chunk))
                .distinct()
            )
        )
        days |= _days(
            session.execute(
                select(Sighting.store_id, day_of(dialect, Sighting.at))
                .where(Sighting.customer_id.in_(chunk))
                .distinct()
            )
        )
    mark_dirty(session, days)
    _recompute_firsts(session, customer_ids)


def ensure_fresh(sessions: sessionmaker[Session]) -> RefreshStats:
    """Refresh before a report: one at a time in this process, and per database on
    PostgreSQL (an advisory lock held for the transaction)."""
    with _process_lock, sessions() as session, session.begin():
        if _dialect(session) == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        return refresh(session)
