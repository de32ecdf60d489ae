"""Reports against answers computed by hand on a small data set, on SQLite and PostgreSQL.

Three stores (A and B in region North, C in South), three customers and one member of staff,
eight receipts and eleven entrance sightings over three days (Mon 2 - Wed 4 March 2026, plus
one earlier purchase). Every expected figure below is worked out from that table in the
comments, not by running the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.db.models import Customer, LineItem, Receipt, Sighting
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.reports import REPORTS, run_report
from cloud_api.reports.access import authorise
from cloud_api.reports.forecast import holt
from cloud_api.services.errors import Forbidden, NotFound, Unprocessable
from cloud_api.settings import CloudSettings
from contract import Report, ReportFilters
from tests.cloud_fixtures import migrated_url  # noqa: F401
from tests.cloud_server import serve

START, END = date(2026, 3, 2), date(2026, 3, 4)
PASSWORD = "correct horse battery"
CATALOGUE = {
    "P1": ("Espresso beans", "coffee", "Roastery", Decimal("10.00")),
    "P2": ("Green tea", "tea", "Leafy", Decimal("5.00")),
    "P3": ("Carrot cake", "bakery", "Crumb", Decimal("4.00")),
}


@dataclass(frozen=True)
class World:
    url: str
    sessions: sessionmaker[Session]
    stores: dict[str, int]
    regions: dict[str, int]
    customers: dict[str, int]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return (
        datetime(2026, 3, day, hour, minute, tzinfo=UTC)
        if day > 0
        else datetime(2026, 2, 20, hour, minute, tzinfo=UTC)
    )


def build(url: str) -> World:
    sessions = session_factory(make_engine(url))
    with transaction(sessions) as session:
        north = admin.create_region(session, "North")
        south = admin.create_region(session, "South")
        stores, tills, doors = {}, {}, {}
        for code, region in (("A", "North"), ("B", "North"), ("C", "South")):
            store = admin.create_store(session, region, f"ST-{code}", f"Store {code}")
            stores[code] = store.id
            tills[code] = admin.create_device(session, f"ST-{code}", "till", "till")[0].id
            doors[code] = admin.create_device(session, f"ST-{code}", "entrance", "door")[0].id
        admin.create_user(session, "boss@example.com", "Boss", "head_office", PASSWORD)
        admin.create_user(session, "anna@example.com", "Anna", "store_manager", PASSWORD, "ST-A")
        people = {  # visit_count: their checkouts on record (r1 r4 r7; r0 r2; r6; r5)
            "c1": Customer(
                gender="female",
                age_years=30.0,
                vip_number="VIP-1",
                name="Ann",
                level="gold",
                consent_at=at(-1, 9),
                visit_count=3,
            ),
            "c2": Customer(gender="male", age_years=50.0, visit_count=2),
            "c3": Customer(gender="female", age_years=20.0, visit_count=1),
            "s1": Customer(gender="male", age_years=40.0, is_staff=True, visit_count=1),
        }
        for person in people.values():
            person.region_id, person.first_store_id = north.id, stores["A"]
            session.add(person)
        session.flush()
        ids = {k: v.id for k, v in people.items()}
        receipts = [  # store, customer, time, [(sku, quantity)]
            ("A", "c2", at(0, 10), [("P1", 1)]),  # before the window
            ("A", "c1", at(2, 9, 30), [("P1", 2), ("P2", 1)]),  # 25
            ("A", "c2", at(2, 14, 10), [("P2", 2)]),  # 10
            ("A", None, at(2, 14, 40), [("P3", 1)]),  # 4, nobody recognised
            ("A", "c1", at(3, 10, 15), [("P3", 2)]),  # 8
            ("A", "s1", at(3, 11), [("P1", 1)]),  # 10, staff
            ("B", "c3", at(4, 18), [("P1", 1)]),  # 10
            ("C", "c1", at(4, 12), [("P2", 1)]),  # 5
        ]
        for n, (code, who, when, lines) in enumerate(receipts):
            customer = ids[who] if who else None
            items = [
                LineItem(
                    sku=sku,
                    name=CATALOGUE[sku][0],
                    category=CATALOGUE[sku][1],
                    brand=CATALOGUE[sku][2],
                    quantity=Decimal(q),
                    unit_price=CATALOGUE[sku][3],
                    store_id=stores[code],
                    sold_at=when,
                    customer_id=customer,
                )
                for sku, q in lines
            ]
            session.add(
                Receipt(
                    store_id=stores[code],
                    device_id=tills[code],
                    customer_id=customer,
                    idempotency_key=f"k{n}",
                    number=f"R{n}",
                    currency="EUR",
                    total=sum((i.quantity * i.unit_price for i in items), Decimal(0)),
                    scanned_at=when,
                    response={},
                    items=items,
                )
            )
        sightings = [
            ("A", "c1", at(2, 9, 20)),
            ("A", "c2", at(2, 14)),
            ("A", None, at(2, 14, 30)),
            ("A", None, at(2, 15)),
            ("A", "s1", at(2, 8)),
            ("A", "c1", at(3, 10)),
            ("A", "s1", at(3, 8)),
            ("A", None, at(3, 11)),
            ("B", "c3", at(4, 17, 50)),
            ("B", None, at(4, 18, 30)),
            ("C", "c1", at(4, 11, 50)),
        ]
        for code, who, when in sightings:
            session.add(
                Sighting(
                    store_id=stores[code],
                    device_id=doors[code],
                    customer_id=ids[who] if who else None,
                    is_vip=who == "c1",
                    at=when,
                )
            )
        regions = {"North": north.id, "South": south.id}
    return World(url, sessions, stores, regions, ids)


@pytest.fixture
def world(migrated_url: str) -> World:  # noqa: F811
    return build(migrated_url)


def report(
    world: World,
    name: str,
    *,
    store: str | None = None,
    region: str | None = None,
    **params: str | int,
) -> Report:
    filters = ReportFilters(
        date_from=START,
        date_to=END,
        store_id=world.stores[store] if store else None,
        region_id=world.regions[region] if region else None,
        params=params,
    )
    return run_report(world.sessions, name, filters)


def table(r: Report) -> list[dict[str, object]]:
    return [dict(zip(r.columns, row, strict=True)) for row in r.rows]


def test_traffic_counts_visitors_transactions_and_conversion(world: World) -> None:
    r = report(world, "traffic")
    # Mon: 4 visitors (staff s1 left out), r1 r2 r3; Tue: 2 visitors, r4 (r5 is staff);
    # Wed: B 2 + C 1 visitors, r6 r7
    assert r.rows == [
        ["2026-03-02", 4, 3, 2, 0.75],
        ["2026-03-03", 2, 1, 1, 0.5],
        ["2026-03-04", 3, 2, 2, 0.6667],
    ]
    assert r.summary == {"visitors": 9, "transactions": 6, "buyers": 3, "conversion": 0.6667}
    a = report(world, "traffic", store="A")
    assert a.rows[2] == ["2026-03-04", 0, 0, 0, None]  # no visitors: no conversion
    assert a.summary["visitors"] == 6 and a.summary["transactions"] == 4
    north = report(world, "traffic", region="North")
    assert north.summary == {"visitors": 8, "transactions": 5, "buyers": 3, "conversion": 0.625}


def test_heatmap_by_weekday_and_hour(world: World) -> None:
    r = report(world, "heatmap")
    cells = {(row[0], row[1]): (row[2], row[3]) for row in r.rows}
    assert len(r.rows) == 168
    assert cells[(0, 9)] == (1, 1)
    assert cells[(0, 14)] == (2, 2)
    assert cells[(0, 15)] == (1, 0)
    assert cells[(0, 8)] == (0, 0)  # staff arriving before opening: not a visitor
    assert cells[(1, 10)] == (1, 1)
    assert cells[(1, 11)] == (1, 0)  # the staff purchase is not a transaction here
    assert cells[(2, 11)] == (1, 0) and cells[(2, 12)] == (0, 1)
    assert cells[(2, 17)] == (1, 0) and cells[(2, 18)] == (1, 1)
    assert sum(int(v or 0) for v, _ in cells.values()) == 9
    assert r.summary["busiest_weekday"] == 0 and r.summary["busiest_hour"] == 14


def test_new_and_returning_customers(world: World) -> None:
    r = report(world, "customers")
    # first purchases: c2 on 20 Feb, c1 on 2 Mar, c3 on 4 Mar
    assert r.rows == [
        ["2026-03-02", 1, 1, 1],
        ["2026-03-03", 0, 1, 0],
        ["2026-03-04", 1, 1, 0],
    ]
    # over the period: new c1 and c3; returning c2 and c1 (back on Tue and Wed)
    assert r.summary == {
        "new_customers": 2,
        "returning_customers": 2,
        "anonymous_transactions": 1,
        "buyers": 3,
        "returning_share": 0.6667,
    }
    c = report(world, "customers", store="C")  # c1's first purchase in store C: new there
    assert c.rows[2] == ["2026-03-04", 1, 0, 0]


def test_visit_frequency(world: World) -> None:
    r = report(world, "frequency")
    # c1: r1 r4 r7 (3 purchases, 38.00); c2: r2 (10.00); c3: r6 (10.00)
    assert r.rows == [
        ["1", 2, 0.6667, 20.0],
        ["2", 0, 0.0, 0.0],
        ["3-4", 1, 0.3333, 38.0],
        ["5-9", 0, 0.0, 0.0],
        ["10+", 0, 0.0, 0.0],
    ]
    assert r.summary == {"customers": 3, "purchases_per_customer": 1.67, "repeat_share": 0.3333}


def test_retention_of_first_time_buyers(world: World) -> None:
    r = report(world, "retention", days=30)
    # first-time buyers in the window: c1 (again the next day) and c3 (not again)
    assert table(r) == [
        {
            "cohort_week": "2026-03-02",
            "first_time_buyers": 2,
            "returned": 1,
            "retention_rate": 0.5,
            "complete": 0,
        }
    ]
    assert r.summary["retention_rate"] == 0.5
    short = report(world, "retention", days=1)  # 24h40 between c1's purchases: not within 1 day
    assert short.rows[0][2] == 0


def test_vip_activity(world: World) -> None:
    r = report(world, "vip")
    assert len(r.rows) == 1
    number, name, level, visits, spend, last = r.rows[0]
    assert (number, name, level, visits, spend) == ("VIP-1", "Ann", "gold", 3, 38.0)
    assert str(last).startswith("2026-03-04T12:00")
    assert r.summary["member_revenue_share"] == round(38 / 72, 4)


def test_age_and_gender_of_visitors_and_buyers(world: World) -> None:
    r = report(world, "demographics")
    assert r.rows == [
        ["18-24", "female", 1, 1],
        ["25-34", "female", 3, 1],
        ["45-54", "male", 1, 1],
        ["unknown", "unknown", 4, 1],
    ]
    assert r.summary == {"visitors": 9, "buyers": 4, "female_share_of_identified_visitors": 0.8}


def test_sales_by_category_product_and_basket(world: World) -> None:
    categories = report(world, "categories")
    assert categories.rows == [
        ["coffee", 40.0, 4.0, 3, 0.5556],
        ["tea", 20.0, 4.0, 3, 0.2778],
        ["bakery", 12.0, 3.0, 2, 0.1667],
    ]
    products = report(world, "products", limit=2)
    assert products.rows == [
        ["P1", "Espresso beans", "coffee", "Roastery", 40.0, 4.0, 3],
        ["P2", "Green tea", "tea", "Leafy", 20.0, 4.0, 3],
    ]
    assert products.summary["listed_share_of_revenue"] == round(60 / 72, 4)
    basket = report(world, "basket")
    assert basket.rows == [
        ["2026-03-02", 3, 39.0, 13.0, 2.0],
        ["2026-03-03", 2, 18.0, 9.0, 1.5],
        ["2026-03-04", 2, 15.0, 7.5, 1.0],
    ]
    assert basket.summary == {
        "transactions": 7,
        "revenue": 72.0,
        "average_basket": 10.29,
        "items_per_basket": 1.57,
    }


def test_product_portrait_and_preferences(world: World) -> None:
    r = report(world, "portrait", sku="P1")
    # P1 bought by c1 (20.00) and c3 (10.00) in the window; s1 is staff, r0 is before it
    assert r.rows == [
        ["gender", "female", 2, 1.0, 30.0],
        ["age_band", "18-24", 1, 0.5, 10.0],
        ["age_band", "25-34", 1, 0.5, 20.0],
        ["frequency", "1", 1, 0.5, 10.0],
        ["frequency", "3-4", 1, 0.5, 20.0],
    ]
    assert r.summary == {"sku": "P1", "buyers": 2, "average_age": 25.0, "female_share": 1.0}
    with pytest.raises(NotFound, match="P9"):
        report(world, "portrait", sku="P9")
    with pytest.raises(Unprocessable, match="sku"):
        report(world, "portrait")
    prefs = report(world, "preferences")
    assert prefs.rows == [
        ["female", "18-24", "coffee", 10.0, 1.0],
        ["female", "25-34", "coffee", 20.0, 0.5263],
        ["female", "25-34", "tea", 10.0, 0.2632],
        ["female", "25-34", "bakery", 8.0, 0.2105],
        ["male", "45-54", "tea", 10.0, 1.0],
    ]


def test_forecast_rows_and_the_smoothing_model(world: World) -> None:
    r = report(world, "forecast", weeks=2, limit=3)
    history = [row for row in r.rows if row[4] == "history"]
    forecast = [row for row in r.rows if row[4] == "forecast"]
    assert {row[1] for row in history} == {"P1", "P2", "P3"}
    assert len(history) == 3 * 12 and len(forecast) == 3 * 2
    # the last history week (26 Feb - 4 Mar) holds the window's units: P1 2+1+1 = 4
    last_week = {row[1]: row[5] for row in history if row[3] == "2026-02-26"}
    assert last_week == {"P1": 4.0, "P2": 4.0, "P3": 3.0}
    assert all(float(row[5] or 0) >= 0 for row in forecast)
    constant = holt(np.full((1, 12), 7.0), 4)
    assert np.allclose(constant, 7.0)
    rising = holt(np.arange(1.0, 13.0)[None, :], 3)[0]
    assert rising[0] > 11.0 and rising[0] < rising[1] < rising[2]  # the trend goes on, damped
    assert rising[2] - rising[1] < rising[1] - rising[0]


def test_every_listed_report_runs(world: World) -> None:
    for name in REPORTS:
        params = {"sku": "P2"} if name == "portrait" else {}
        r = report(world, name, **params)
        assert r.columns and all(len(row) == len(r.columns) for row in r.rows)


def test_store_managers_see_only_their_store(world: World) -> None:
    with world.sessions() as session:
        from sqlalchemy import select

        from cloud_api.db.models import User

        manager = session.scalar(select(User).where(User.email == "anna@example.com"))
        boss = session.scalar(select(User).where(User.email == "boss@example.com"))
    assert manager is not None and boss is not None
    plain = ReportFilters(date_from=START, date_to=END)
    assert authorise(world.sessions, manager, plain).store_id == world.stores["A"]
    with pytest.raises(Forbidden):
        authorise(world.sessions, manager, plain.model_copy(update={"store_id": world.stores["B"]}))
    with pytest.raises(Forbidden):
        authorise(
            world.sessions, manager, plain.model_copy(update={"region_id": world.regions["South"]})
        )
    assert authorise(world.sessions, boss, plain) == plain
    with pytest.raises(Unprocessable, match="not in region"):
        authorise(
            world.sessions,
            boss,
            plain.model_copy(
                update={"store_id": world.stores["C"], "region_id": world.regions["North"]}
            ),
        )
    with pytest.raises(NotFound):
        authorise(world.sessions, boss, plain.model_copy(update={"store_id": 999_999}))


@pytest.fixture
def api(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = CloudSettings(
        database_url=world.url,
        index_dir=tmp_path_factory.mktemp("index"),
        auto_migrate=False,
        estimate_demographics=False,
    )
    with serve(settings) as server:
        yield server.url


def test_sign_in_reports_csv_and_scope_over_http(world: World, api: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        assert client.get("/v1/reports/traffic").status_code == 401
        wrong = client.post("/v1/auth/login", json={"email": "anna@example.com", "password": "x"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        signed = client.post(
            "/v1/auth/login", json={"email": "Anna@Example.com", "password": PASSWORD}
        )
        assert signed.status_code == 200 and signed.json()["user"]["role"] == "store_manager"
        assert "storesight_session" in client.cookies  # the dashboard rides on the cookie
        query = {"from": START.isoformat(), "to": END.isoformat()}
        mine = client.get("/v1/reports/traffic", params=query)
        assert mine.status_code == 200
        assert mine.json()["filters"]["store_id"] == world.stores["A"]
        assert mine.json()["summary"]["visitors"] == 6
        other = client.get("/v1/reports/traffic", params={**query, "store": world.stores["B"]})
        assert other.status_code == 403
        scope = client.get("/v1/scope").json()
        assert [s["code"] for s in scope["stores"]] == ["ST-A"]
        csv = client.get("/v1/reports/categories", params={**query, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.strip().splitlines()
        assert lines[0] == "category,revenue,quantity,transactions,share"
        assert lines[1].startswith("coffee,30.0,3.0,2,")  # store A: r1 2x10 + r5 1x10
        bad = client.get("/v1/reports/traffic", params={"from": "2026-03-05", "to": "2026-03-01"})
        assert bad.status_code == 422 and "before the start" in bad.json()["detail"]
        assert client.get("/v1/reports/nope", params=query).status_code == 404
        assert client.post("/v1/auth/logout").status_code == 204
        client.cookies.clear()
        token = signed.json()["token"]
        after = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert after.status_code == 401  # signed out means the token is gone
        boss = client.post(
            "/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD}
        ).json()
        everything = client.get(
            "/v1/reports/traffic",
            params=query,
            headers={"Authorization": f"Bearer {boss['token']}"},
        )
        assert everything.json()["summary"]["visitors"] == 9
