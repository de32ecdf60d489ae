"""The report rollups: refreshed slice by slice as receipts and sightings arrive, and after a
deletion or a change of staff status, they equal a full rebuild from the base tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api import admin
from cloud_api.db.models import (
    LineItem,
    Receipt,
    RollupBaskets,
    RollupBuyers,
    RollupCategories,
    RollupCustomerFirst,
    RollupSales,
    RollupSegmentSales,
    RollupTraffic,
    RollupVisitorSegments,
    Sighting,
)
from cloud_api.db.session import transaction
from cloud_api.reports import rollups
from tests.cloud_fixtures import migrated_url  # noqa: F401
from tests.test_reports import World, build, report

TABLES = (
    RollupTraffic,
    RollupSales,
    RollupCategories,
    RollupBaskets,
    RollupVisitorSegments,
    RollupSegmentSales,
    RollupBuyers,
    RollupCustomerFirst,
)


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table in TABLES:
        columns = [c for c in table.__table__.columns]
        rows = session.execute(select(*columns)).all()
        found[table.__tablename__] = sorted(
            (tuple(str(v) for v in row) for row in rows), key=lambda r: r
        )
    return found


def rebuilt(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """What a full rebuild gives, without keeping it."""
    with world.sessions() as session:
        session.begin()
        rollups.rebuild(session)
        found = snapshot(session)
        session.rollback()
    return found


def current(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.sessions() as session:
        return snapshot(session)


def test_new_activity_refreshes_only_its_slices(migrated_url: str) -> None:  # noqa: F811
    world = build(migrated_url)
    assert rollups.ensure_fresh(world.sessions).mode == "full"  # the first time
    assert rollups.ensure_fresh(world.sessions).mode == "none"  # nothing new
    before = report(world, "traffic", store="B").rows[2]
    assert before == ["2026-03-04", 2, 1, 1, 0.5]
    at = datetime(2026, 3, 4, 19, 5, tzinfo=UTC)
    with transaction(world.sessions) as session:
        till = session.scalar(
            select(Receipt.device_id).where(Receipt.store_id == world.stores["B"])
        )
        door = session.scalar(
            select(Sighting.device_id).where(Sighting.store_id == world.stores["B"])
        )
        assert till is not None and door is not None
        c2 = world.customers["c2"]
        session.add(Sighting(store_id=world.stores["B"], device_id=door, customer_id=c2, at=at))
        line = LineItem(
            sku="P2",
            name="Green tea",
            category="tea",
            brand="Leafy",
            quantity=Decimal(3),
            unit_price=Decimal("5.00"),
            store_id=world.stores["B"],
            sold_at=at,
            customer_id=c2,
        )
        session.add(
            Receipt(
                store_id=world.stores["B"],
                device_id=till,
                customer_id=c2,
                idempotency_key="late",
                number="R-late",
                currency="EUR",
                total=Decimal("15.00"),
                scanned_at=at,
                response={},
                items=[line],
            )
        )
    stats = rollups.ensure_fresh(world.sessions)
    assert stats.mode == "slices" and stats.slices >= 1
    after = report(world, "traffic", store="B").rows[2]
    assert after == ["2026-03-04", 3, 2, 2, 0.6667]  # c2 came in and bought at B
    customers = report(world, "customers", store="B")
    assert customers.rows[2] == ["2026-03-04", 2, 0, 0]  # c3 and c2 both new at B
    assert current(world) == rebuilt(world)


def test_deleting_a_customer_and_making_one_staff_refresh_their_days(
    migrated_url: str,  # noqa: F811
) -> None:
    world = build(migrated_url)
    rollups.ensure_fresh(world.sessions)
    from cloud_api.services.customers import purge

    with transaction(world.sessions) as session:
        purge(session, [world.customers["c3"]])  # deleted: their purchase becomes anonymous
    traffic = report(world, "traffic", store="B")
    assert traffic.rows[2] == ["2026-03-04", 2, 1, 0, 0.5]  # still a visitor, no longer a buyer
    assert current(world) == rebuilt(world)
    with transaction(world.sessions) as session:
        assert admin.set_staff(session, world.customers["c2"], True)
    traffic = report(world, "traffic", store="A")
    assert traffic.rows[0] == ["2026-03-02", 3, 2, 1, 0.6667]  # c2 no longer counted on Mon
    assert current(world) == rebuilt(world)
