"""What every report shares: the time window, the store scope, staff exclusion, SQL for
calendar buckets on SQLite and PostgreSQL, and demographic bands.

Times are bucketed in UTC: days, weekdays (0 = Monday) and hours of the stored timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, cast, func, or_, select, true
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, RollupBuyers, Store
from cloud_api.services.errors import Unprocessable
from contract import Cell, ReportFilters

#: what a report builds: its columns, its rows and its summary figures
Table = tuple[list[str], list[list[Cell]], dict[str, Cell]]

#: (label, from, below) age ranges in years that reports group visitors and sales by
REPORT_AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<18", 0, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 200),
)
UNKNOWN = "unknown"
MAX_DAYS = 3 * 366
#: the dates a report may cover: those a device's timestamps may carry (contract.bodies), far
#: from the calendar's ends so that a day added or a time zone applied never overflows
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(8999, 12, 31)


@dataclass(frozen=True)
class Window:
    """A report's filters made concrete: [start, end) in UTC and the stores it covers."""

    filters: ReportFilters
    start: datetime
    end: datetime
    dialect: str

    @property
    def days(self) -> list[date]:
        count = (self.filters.date_to - self.filters.date_from).days + 1
        return [self.filters.date_from + timedelta(days=i) for i in range(count)]

    def param(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.filters.params.get(name, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise Unprocessable(f"{name}: must be a whole number, not {raw!r}") from None
        if not low <= value <= high:
            raise Unprocessable(f"{name}: must be between {low} and {high}, not {value}")
        return value

    def in_range(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)

    def on_days(self, column: Any) -> ColumnElement[bool]:
        """For a rollup's DATE column."""
        return and_(column >= self.filters.date_from, column <= self.filters.date_to)

    def stores(self, column: Any) -> ColumnElement[bool]:
        """The store filter on a store-id column (a region is its stores)."""
        if self.filters.store_id is not None:
            return column == self.filters.store_id  # type: ignore[no-any-return]
        if self.filters.region_id is not None:
            region = select(Store.id).where(Store.region_id == self.filters.region_id)
            return column.in_(region)  # type: ignore[no-any-return]
        return true()

    def day(self, column: Any) -> ColumnElement[Any]:
        return day_of(self.dialect, column)

    def store_scope(self) -> tuple[str, int]:
        """The rollup scope these filters read: a store, a region, or the chain (id 0)."""
        if self.filters.store_id is not None:
            return "store", self.filters.store_id
        if self.filters.region_id is not None:
            return "region", self.filters.region_id
        return "chain", 0


def day_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def hour_of(dialect: str, column: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return cast(func.extract("hour", func.timezone("UTC", column)), Integer)
    return cast(func.strftime("%H", column), Integer)


def week_start_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """The Monday (UTC) of a timestamp column's week."""
    if dialect == "postgresql":
        return func.date(func.date_trunc("week", func.timezone("UTC", column)))
    return func.date(column, "weekday 0", "-6 days")


def at_most_days_apart(dialect: str, earlier: Any, later: Any, days: int) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return later <= earlier + func.make_interval(0, 0, 0, days)  # type: ignore[no-any-return]
    return func.julianday(later) - func.julianday(earlier) <= days


def as_date(value: Any) -> date:
    """A DATE column's value, whatever the backend returned (SQLite gives text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def check_day(field: str, day: date) -> None:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise Unprocessable(
            f"{field}: a report's dates lie between {EARLIEST_DAY} and {LATEST_DAY}"
        )


def window(session: Session, filters: ReportFilters) -> Window:
    check_day("from", filters.date_from)
    check_day("to", filters.date_to)
    if filters.date_to < filters.date_from:
        raise Unprocessable(
            f"to: the end date {filters.date_to} is before the start date {filters.date_from}"
        )
    if (filters.date_to - filters.date_from).days + 1 > MAX_DAYS:
        raise Unprocessable(f"to: a report covers at most {MAX_DAYS} days")
    start = datetime.combine(filters.date_from, time(0), tzinfo=UTC)
    end = datetime.combine(filters.date_to + timedelta(days=1), time(0), tzinfo=UTC)
    dialect = session.get_bind().dialect.name
    return Window(filters, start, end, dialect)


def not_staff(customer_column: Any) -> ColumnElement[bool]:
    """Rows of unidentified people, or of customers who are not staff."""
    staff = select(Customer.id).where(Customer.is_staff == true())
    return or_(customer_column.is_(None), customer_column.not_in(staff))


def age_band(age_column: Any) -> ColumnElement[str]:
    whens = [
        (and_(age_column >= low, age_column < high), label) for label, low, high in REPORT_AGE_BANDS
    ]
    return case(*whens, else_=UNKNOWN)


def day_text(value: Any) -> str:
    """A bucketed day as ISO text, whatever the backend returned."""
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def ratio(numerator: float, denominator: float, digits: int = 4) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def money(value: Any) -> float:
    return round(float(value or 0), 2)


def in_store_period_buyers(session: Session, w: Window) -> tuple[int, int]:
    """(buyers, returning customers) of the in-store stores within the filters, summed over
    their days: they send day figures only, and head office has no customer ids to tell a
    customer buying on two days of the period apart, so such a customer counts once a day."""
    buyers, returning = session.execute(
        select(
            func.coalesce(func.sum(RollupBuyers.buyers), 0),
            func.coalesce(func.sum(RollupBuyers.returning_customers), 0),
        )
        .join(Store, Store.id == RollupBuyers.scope_id)
        .where(
            RollupBuyers.scope == "store",
            Store.mode == "store",
            w.stores(RollupBuyers.scope_id),
            w.on_days(RollupBuyers.day),
        )
    ).one()
    return int(buyers), int(returning)
