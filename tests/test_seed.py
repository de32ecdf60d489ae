"""`cloud_api.seed` and `storesight-cloud seed`: synthetic chain data, on SQLite and PostgreSQL.

One small seed per backend (3 stores x 30 days, ~2,500 receipts) is shared by the module's
tests, which read it back and check what the dashboard and the reports rely on.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from cloud_api.cli import main as cli_main
from cloud_api.db.migrate import is_sqlite, upgrade
from cloud_api.db.models import (
    Customer,
    Device,
    FaceSample,
    LineItem,
    Product,
    Receipt,
    Region,
    RollupBaskets,
    RollupBuyers,
    RollupDirty,
    Sighting,
    Store,
    Visit,
)
from cloud_api.db.session import make_engine
from cloud_api.reports import rollups
from cloud_api.seed import SeedError, SeedSummary, check_arguments, seed
from tests.cloud_fixtures import (
    module_migrated_url,  # noqa: F401  (fixture)
    temporary_database,
)

END = date(2026, 3, 29)  # a Sunday: the 30 days hold four weekends and a bit
STORES, DAYS, RECEIPTS, SEED = 3, 30, 2_500, 7
CENT = Decimal("0.01")


@dataclass
class Seeded:
    url: str
    summary: SeedSummary
    regions: list[Row[Any]]
    stores: list[Row[Any]]
    devices: list[Row[Any]]
    products: list[Row[Any]]
    customers: list[Row[Any]]
    receipts: list[Row[Any]]
    items: list[Row[Any]]
    sightings: list[Row[Any]]
    visits: list[Row[Any]]

    @property
    def staff_ids(self) -> set[int]:
        return {c.id for c in self.customers if c.is_staff}


def load(url: str) -> dict[str, list[Row[Any]]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {
                name: list(session.execute(select(model.__table__).order_by(model.id)).all())
                for name, model in (
                    ("regions", Region),
                    ("stores", Store),
                    ("devices", Device),
                    ("products", Product),
                    ("customers", Customer),
                    ("receipts", Receipt),
                    ("items", LineItem),
                    ("sightings", Sighting),
                    ("visits", Visit),
                )
            }
    finally:
        engine.dispose()


def fingerprint(url: str) -> dict[str, Any]:
    """Aggregates that any change to the generated data would change."""
    data = load(url)
    receipts = data["receipts"]
    return {
        "counts": {name: len(rows) for name, rows in data.items()},
        "revenue": str(sum(r.total for r in receipts).quantize(CENT)),
        "receipts_per_store": sorted(Counter(r.store_id for r in receipts).items()),
        "first_receipts": [(r.scanned_at, r.total.quantize(CENT)) for r in receipts[:20]],
        "identified_sightings": sum(s.customer_id is not None for s in data["sightings"]),
        "customers": sorted(
            (c.gender, c.age_years, c.visit_count, c.lifetime_spend.quantize(CENT), c.is_staff)
            for c in data["customers"]
        ),
        "skus": sorted(Counter(i.sku for i in data["items"]).items()),
    }


@pytest.fixture(scope="module")
def seeded(module_migrated_url: str) -> Iterator[Seeded]:  # noqa: F811
    summary = seed(
        module_migrated_url,
        stores=STORES,
        days=DAYS,
        end=END,
        receipts=RECEIPTS,
        seed=SEED,
        progress=False,
    )
    yield Seeded(module_migrated_url, summary, **load(module_migrated_url))


def test_summary_counts_the_rows_written(seeded: Seeded) -> None:
    summary = seeded.summary
    assert (summary.regions, summary.stores, summary.devices) == (1, STORES, 2 * STORES)
    assert summary.products == len(seeded.products) == 60
    assert len({p.category for p in seeded.products}) == 12
    assert summary.customers == len(seeded.customers)
    assert summary.staff == len(seeded.staff_ids)
    assert summary.members == sum(c.vip_number is not None for c in seeded.customers)
    assert summary.receipts == len(seeded.receipts)
    assert summary.line_items == len(seeded.items)
    assert summary.sightings == len(seeded.sightings)
    assert summary.visits == len(seeded.visits)
    assert abs(summary.receipts - RECEIPTS) <= 0.1 * RECEIPTS
    assert (summary.first_day, summary.last_day) == (date(2026, 2, 28), END)
    assert [s.code for s in seeded.stores] == ["S001", "S002", "S003"]
    for store in seeded.stores:
        kinds = sorted(d.kind for d in seeded.devices if d.store_id == store.id)
        assert kinds == ["entrance", "till"]
    days = {r.scanned_at.date() for r in seeded.receipts} | {s.at.date() for s in seeded.sightings}
    assert min(days) == summary.first_day and max(days) == END


def test_receipts_add_up_and_items_carry_their_receipt(seeded: Seeded) -> None:
    receipts = {r.id: r for r in seeded.receipts}
    totals: dict[int, Decimal] = defaultdict(Decimal)
    lines: Counter[int] = Counter()
    for item in seeded.items:
        receipt = receipts[item.receipt_id]
        totals[item.receipt_id] += item.quantity * item.unit_price
        lines[item.receipt_id] += 1
        assert (item.store_id, item.sold_at, item.customer_id) == (
            receipt.store_id,
            receipt.scanned_at,
            receipt.customer_id,
        )
    for receipt in seeded.receipts:
        assert totals[receipt.id].quantize(CENT) == receipt.total.quantize(CENT) > 0
        assert 1 <= lines[receipt.id] <= 6
    assert 2.2 <= statistics.mean(lines.values()) <= 3.5
    till = {d.store_id: d.id for d in seeded.devices if d.kind == "till"}
    entrance = {d.store_id: d.id for d in seeded.devices if d.kind == "entrance"}
    assert all(r.device_id == till[r.store_id] for r in seeded.receipts)
    assert all(s.device_id == entrance[s.store_id] for s in seeded.sightings)
    assert len({(r.device_id, r.idempotency_key) for r in seeded.receipts}) == len(receipts)
    assert {r.currency for r in seeded.receipts} == {"EUR"}


def test_weekends_are_busier_and_hours_follow_opening(seeded: Seeded) -> None:
    staff = seeded.staff_ids
    per_store_day: Counter[tuple[int, date]] = Counter(
        (s.store_id, s.at.date()) for s in seeded.sightings if s.customer_id not in staff
    )
    weekend = [n for (_, day), n in per_store_day.items() if day.weekday() >= 5]
    weekday = [n for (_, day), n in per_store_day.items() if day.weekday() < 5]
    assert statistics.mean(weekend) > 1.15 * statistics.mean(weekday)
    hours = Counter(s.at.hour for s in seeded.sightings if s.customer_id not in staff)
    assert set(hours) <= set(range(7, 21))  # staff missed at the door come in at 7
    assert hours[12] + hours[13] > hours[9] + hours[10]  # lunch peak
    assert hours[17] + hours[18] > hours[20] + hours[19] // 2  # early evening


def test_staff_come_in_most_days_and_sometimes_buy(seeded: Seeded) -> None:
    staff = [c for c in seeded.customers if c.is_staff]
    per_store = Counter(c.first_store_id for c in staff)
    assert sorted(per_store) == [s.id for s in seeded.stores]
    assert all(2 <= n <= 3 for n in per_store.values())
    assert all(c.vip_number is None and c.consent_at is None for c in staff)
    days_seen: dict[int, set[date]] = defaultdict(set)
    staff_ids = seeded.staff_ids
    for sighting in seeded.sightings:
        if sighting.customer_id in staff_ids:
            days_seen[sighting.customer_id].add(sighting.at.date())
            assert sighting.at.hour in (7, 8, 12, 13, 14)  # arriving for work, after lunch
    assert all(len(days_seen[c.id]) >= DAYS // 2 for c in staff)
    assert any(r.customer_id in staff_ids for r in seeded.receipts)


def test_identified_shares_and_conversion_are_plausible(seeded: Seeded) -> None:
    staff = seeded.staff_ids
    visitors = [s for s in seeded.sightings if s.customer_id not in staff]
    buyers = [r for r in seeded.receipts if r.customer_id not in staff]
    identified = sum(s.customer_id is not None for s in visitors) / len(visitors)
    assert 0.2 <= identified <= 0.8
    assert 0.65 <= sum(r.customer_id is not None for r in buyers) / len(buyers) <= 0.87
    assert 0.28 <= len(buyers) / len(visitors) <= 0.45
    # customers are enrolled at checkouts, so the door recognises more of them week by week
    first_week = [s for s in visitors if (s.at.date() - seeded.summary.first_day).days < 7]
    last_week = [s for s in visitors if (END - s.at.date()).days < 7]

    def share(rows: list[Row[Any]]) -> float:
        return sum(s.customer_id is not None for s in rows) / len(rows)

    assert share(last_week) > share(first_week) + 0.15


def test_returning_customers_and_one_off_buyers(seeded: Seeded) -> None:
    staff = seeded.staff_ids
    purchases = Counter(r.customer_id for r in seeded.receipts if r.customer_id is not None)
    buyers = [n for customer, n in purchases.items() if customer not in staff]
    returning = sum(n >= 2 for n in buyers)
    assert returning >= 0.1 * len(buyers)
    assert sum(n == 1 for n in buyers) >= 0.3 * len(buyers)
    assert max(buyers) >= 4  # the loyal core


def test_customer_figures_match_their_visits_and_receipts(seeded: Seeded) -> None:
    check_customer_figures(seeded)


def check_customer_figures(seeded: Seeded) -> None:
    """Every customer's figures are what the service would keep from their visits and
    receipts, and they were enrolled at their first captured checkout."""
    receipts = {r.id: r for r in seeded.receipts}
    checkouts: Counter[int] = Counter()
    visit_times: dict[int, list[datetime]] = defaultdict(list)
    first_visit: dict[int, Row[Any]] = {}
    for visit in sorted(seeded.visits, key=lambda v: (v.at, v.kind == "entrance")):
        first_visit.setdefault(visit.customer_id, visit)
        visit_times[visit.customer_id].append(visit.at)
        if visit.kind == "checkout":
            checkouts[visit.customer_id] += 1
            receipt = receipts[visit.receipt_id]
            assert (receipt.customer_id, receipt.store_id, receipt.scanned_at) == (
                visit.customer_id,
                visit.store_id,
                visit.at,
            )
        else:
            assert visit.kind == "entrance" and visit.receipt_id is None
    assert sorted(
        (v.customer_id, v.store_id, v.at) for v in seeded.visits if v.kind == "entrance"
    ) == sorted(
        (s.customer_id, s.store_id, s.at) for s in seeded.sightings if s.customer_id is not None
    )
    assert checkouts.total() == sum(r.customer_id is not None for r in seeded.receipts)
    spend: dict[int, Decimal] = defaultdict(Decimal)
    for receipt in seeded.receipts:
        if receipt.customer_id is not None:
            spend[receipt.customer_id] += receipt.total
    for customer in seeded.customers:
        times = visit_times[customer.id]
        assert customer.visit_count == checkouts[customer.id]
        assert customer.lifetime_spend.quantize(CENT) == spend[customer.id].quantize(CENT)
        assert customer.last_seen_at == max(times)
        assert customer.created_at <= min(times)
        if not customer.is_staff:  # enrolled at their first captured checkout
            assert customer.created_at == min(times)
            assert customer.visit_count >= 1
            first = first_visit[customer.id]
            assert first.kind == "checkout" and first.store_id == customer.first_store_id


def test_demographics_and_membership(seeded: Seeded) -> None:
    customers = [c for c in seeded.customers if not c.is_staff]
    genders = Counter(c.gender for c in customers)
    assert set(genders) == {"female", "male"}
    assert min(genders.values()) >= 0.35 * len(customers)
    ages = [c.age_years for c in customers]
    assert min(ages) >= 16 and max(ages) <= 85
    assert 35 <= statistics.mean(ages) <= 55
    assert sum(a >= 65 for a in ages) >= 0.08 * len(ages)
    members = {c.id: c for c in customers if c.vip_number is not None}
    assert 0.03 * len(customers) <= len(members) <= 0.3 * len(customers)
    for member in members.values():
        assert re.fullmatch(r"VIP-\d{6}", member.vip_number)
        assert member.name and member.level in ("standard", "silver", "gold")
        assert (
            member.created_at
            <= member.consent_at
            <= datetime.combine(END, datetime.max.time(), member.consent_at.tzinfo)
        )
    assert all(c.consent_at is None and c.name is None for c in customers if c.id not in members)
    vip_sightings = 0
    for sighting in seeded.sightings:
        seen = members.get(sighting.customer_id or 0)
        expected = seen is not None and seen.consent_at <= sighting.at
        assert sighting.is_vip == expected
        vip_sightings += sighting.is_vip
    assert vip_sightings > 0


def test_baskets_follow_age(seeded: Seeded) -> None:
    ages = {c.id: c.age_years for c in seeded.customers if not c.is_staff}
    young: Counter[str] = Counter()
    old: Counter[str] = Counter()
    for item in seeded.items:
        age = ages.get(item.customer_id or 0)
        if age is not None and age < 25:
            young[item.category] += 1
        elif age is not None and age >= 60:
            old[item.category] += 1

    def share(counts: Counter[str], categories: tuple[str, ...]) -> float:
        return sum(counts[c] for c in categories) / counts.total()

    treats = ("sweets", "snacks", "drinks")
    classics = ("tea", "bakery")
    assert share(young, treats) > share(old, treats) + 0.15
    assert share(old, classics) > share(young, classics) + 0.15


def test_same_seed_same_data_other_seed_other_data(seeded: Seeded, tmp_path: Path) -> None:
    def seed_sqlite(name: str, seed_value: int) -> str:
        url = f"sqlite:///{tmp_path / name}"
        assert cli_main(["migrate", "--database-url", url]) == 0
        seed(
            url,
            stores=STORES,
            days=DAYS,
            end=END,
            receipts=RECEIPTS,
            seed=seed_value,
            progress=False,
        )
        return url

    reference = fingerprint(seeded.url)  # on this test's backend
    assert fingerprint(seed_sqlite("same.db", SEED)) == reference
    other = fingerprint(seed_sqlite("other.db", SEED + 1))
    assert other["revenue"] != reference["revenue"]
    assert other["first_receipts"] != reference["first_receipts"]


def test_refuses_a_database_that_has_activity(seeded: Seeded) -> None:
    with pytest.raises(SeedError, match=r"already holds .*receipts.*use a new database"):
        seed(seeded.url, stores=1, days=1, end=END, progress=False)
    engine = make_engine(seeded.url)
    try:
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(Store)) == STORES
            assert session.scalar(select(func.count()).select_from(Receipt)) == len(seeded.receipts)
    finally:
        engine.dispose()


def test_new_rows_get_ids_after_the_seeded_ones(seeded: Seeded) -> None:
    engine = make_engine(seeded.url)
    try:
        with Session(engine) as session:
            region = Region(name="After the seed")
            customer = Customer(region_id=seeded.regions[0].id, first_store_id=seeded.stores[0].id)
            session.add_all([region, customer])
            session.flush()
            assert region.id > max(r.id for r in seeded.regions)
            assert customer.id > max(c.id for c in seeded.customers)
            session.rollback()  # leave the shared database as seeded
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("stores", "days", "receipts", "in_store", "message"),
    [
        (0, 10, None, 0, "stores must be between 1 and"),
        (2, 0, None, 0, "days must be between 1 and"),
        (2, 10, 0, 0, "receipts must be between 1 and"),
        (2, 10, None, 3, "in-store stores must be between 0 and 2, not 3"),
        (2, 10, None, -1, "in-store stores must be between 0 and 2, not -1"),
    ],
)
def test_bad_arguments_are_refused(
    stores: int, days: int, receipts: int | None, in_store: int, message: str
) -> None:
    with pytest.raises(SeedError, match=message):
        check_arguments(stores, days, receipts, 0, in_store)


def test_cli_seed_and_set_staff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"  # not even migrated: seed does that
    base = ["seed", "--database-url", url, "--stores", "2", "--days", "10"]
    assert cli_main([*base, "--receipts", "300", "--end", "2026-06-30"]) == 0
    out = capsys.readouterr().out
    assert "2 stores in 1 region, 2026-06-21 to 2026-06-30" in out
    receipts = int(re.search(r"^receipts\s+(\d+)$", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert 250 <= receipts <= 350

    assert cli_main(base) == 1
    assert "storesight-cloud: error: database" in (err := capsys.readouterr().err)
    assert "already holds" in err
    for argv, message in (
        (["--stores", "0"], "stores must be between 1 and 9999, not 0"),
        (["--days", "-3"], "days must be between 1 and"),
        (["--end", "30/06/2026"], "--end must be a day as YYYY-MM-DD, not '30/06/2026'"),
    ):
        assert cli_main([*base, *argv]) == 1
        assert f"storesight-cloud: error: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*base, "--receipts", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            customer = session.scalars(
                select(Customer).where(Customer.is_staff.is_(False)).order_by(Customer.id)
            ).first()
            assert customer is not None
        staff = ["admin", "set-staff", "--database-url", url, "--customer", str(customer.id)]
        assert cli_main(staff) == 0
        assert "is now staff" in capsys.readouterr().out
        with Session(engine) as session:
            assert session.get(Customer, customer.id).is_staff  # type: ignore[union-attr]
        assert cli_main([*staff, "--off"]) == 0
        assert "no longer staff" in capsys.readouterr().out
        with Session(engine) as session:
            assert not session.get(Customer, customer.id).is_staff  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert cli_main(["admin", "set-staff", "--database-url", url, "--customer", "999999"]) == 1
    assert "storesight-cloud: error: unknown customer id 999999" in capsys.readouterr().err


# ---- in-store stores: head office keeps only their rollups ---------------------------------

_DAY_ROLLUPS = rollups.DAY_TABLES


def rollup_rows(url: str, store_ids: set[int]) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row of these stores (day tables and their own buyers), sorted."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            found = {
                model.__tablename__: sorted(
                    tuple(row)
                    for row in session.execute(
                        select(model.__table__).where(model.store_id.in_(store_ids))
                    )
                )
                for model in _DAY_ROLLUPS
            }
            found["rollup_buyers"] = sorted(
                tuple(row)
                for row in session.execute(
                    select(RollupBuyers.__table__).where(
                        RollupBuyers.scope == "store", RollupBuyers.scope_id.in_(store_ids)
                    )
                )
            )
            return found
    finally:
        engine.dispose()


def test_in_store_stores_leave_only_their_rollups_at_head_office(
    seeded: Seeded, tmp_path: Path
) -> None:
    backend = "sqlite" if is_sqlite(seeded.url) else "postgresql"
    with temporary_database(backend, tmp_path) as url:
        upgrade(url)
        summary = seed(
            url,
            stores=STORES,
            days=DAYS,
            end=END,
            receipts=RECEIPTS,
            seed=SEED,
            in_store=1,
            progress=False,
        )
        data = load(url)
        mixed = Seeded(url, summary, **data)
        modes = {s.code: s.mode for s in mixed.stores}
        assert modes == {"S001": "cloud", "S002": "cloud", "S003": "store"}
        assert summary.in_store_codes == ("S003",)
        in_store = {s.id for s in mixed.stores if s.mode == "store"}
        cloud = {s.id for s in mixed.stores} - in_store

        # nothing personal of the in-store store at head office
        assert not [r for r in mixed.receipts if r.store_id in in_store]
        assert not [i for i in mixed.items if i.store_id in in_store]
        assert not [s for s in mixed.sightings if s.store_id in in_store]
        assert not [v for v in mixed.visits if v.store_id in in_store]
        assert not [c for c in mixed.customers if c.first_store_id in in_store]
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(FaceSample)) == 0
        finally:
            engine.dispose()
        # the cloud stores' rows are the all-cloud seed's, but for people enrolled in the
        # in-store store: fewer customers, the same receipts, sightings and items
        assert [(r.id, r.total, r.scanned_at) for r in mixed.receipts] == [
            (r.id, r.total, r.scanned_at) for r in seeded.receipts if r.store_id in cloud
        ]
        assert len(mixed.sightings) == sum(s.store_id in cloud for s in seeded.sightings)
        assert len(mixed.items) == sum(i.store_id in cloud for i in seeded.items)
        assert 0 < len(mixed.customers) < len(seeded.customers)
        check_customer_figures(mixed)  # people met in both keep only the cloud's rows
        assert (summary.customers, summary.receipts, summary.sightings, summary.visits) == (
            len(mixed.customers),
            len(mixed.receipts),
            len(mixed.sightings),
            len(mixed.visits),
        )
        assert summary.line_items == len(mixed.items)
        assert summary.devices == len(mixed.devices) == 2 * len(cloud)
        assert {d.store_id for d in mixed.devices} == cloud
        assert summary.members == sum(c.vip_number is not None for c in mixed.customers)

        # its rollups are what they were before its rows left (the all-cloud seed's)
        before = rollup_rows(seeded.url, in_store)
        assert before["rollup_baskets"] and before["rollup_traffic"] and before["rollup_buyers"]
        assert rollup_rows(url, in_store) == before
        baskets = sum(row[2] for row in before["rollup_baskets"])  # transactions
        assert baskets == sum(r.store_id in in_store for r in seeded.receipts) > 0

        # head office's own recomputes leave them alone, and agree with the cloud stores'
        cloud_rows = rollup_rows(url, cloud)
        engine = make_engine(url)
        try:
            with Session(engine) as session, session.begin():
                rollups.rebuild(session)
            assert rollup_rows(url, in_store) == before
            assert rollup_rows(url, cloud) == cloud_rows
            with Session(engine) as session, session.begin():
                for store_id in sorted(in_store | cloud):
                    for day in (END, date(2026, 3, 1)):
                        session.add(RollupDirty(store_id=store_id, day=day))
            with Session(engine) as session, session.begin():
                assert rollups.refresh(session).mode == "slices"
        finally:
            engine.dispose()
        assert rollup_rows(url, in_store) == before
        assert rollup_rows(url, cloud) == cloud_rows


def test_cli_seed_in_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    argv = ["seed", "--database-url", url, "--stores", "2", "--days", "5", "--receipts", "200"]
    assert cli_main([*argv, "--in-store", "3"]) == 1
    assert "in-store stores must be between 0 and 2, not 3" in capsys.readouterr().err
    assert cli_main([*argv, "--in-store", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  of which in-store\s+1$", out, re.MULTILINE)
    assert "in-store (head office holds only their rollups): S002" in out
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            modes = {c: m for c, m in session.execute(select(Store.code, Store.mode))}
            assert modes == {"S001": "cloud", "S002": "store"}
            in_store = select(Store.id).where(Store.code == "S002").scalar_subquery()
            assert not session.scalar(select(func.count()).where(Receipt.store_id == in_store))
            assert session.scalar(select(func.count()).where(RollupBaskets.store_id == in_store))
    finally:
        engine.dispose()
