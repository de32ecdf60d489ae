"""In-store stores in a seeded chain (`seed(..., in_store=N)`): head office keeps only their
aggregates, as if their store servers had pushed them.

The whole chain is generated and its rollups computed as usual; then, for the in-store
stores, `keep_aggregates_only` sets `stores.mode = 'store'` and removes from head office's
database everything personal or biometric of theirs: their sightings, receipts, line items,
visits, face samples, recognition decisions and alerts, their tills and entrance cameras
(they talk to the store server), and the customers who exist only because of them. Their
rollup rows stay: they are what a store server computes from the same rows and pushes
(`cloud_api.upstream`), and head office's recomputes leave in-store stores' rollups alone
(`rollups.UPSTREAM_STORES`).

A customer seen in both kinds of store keeps only the cloud stores' rows, as if the cloud
had met them there first (faces never left the in-store store): one enrolled in an in-store
store is enrolled again at their first captured checkout in a cloud store (`created_at`,
`first_store_id`, `region_id` move there; their earlier entrance sightings in cloud stores
become unidentified, and a membership they joined before that is dropped), or, with no
captured checkout in a cloud store, is removed (their cloud sightings become unidentified).
Every touched customer's `visit_count`, `lifetime_spend` and `last_seen_at` are recomputed
from what is left. The caller then rebuilds head office's rollups (cloud stores' slices
change where sightings became unidentified) and stores the in-store stores' days as a push
from their store servers would (`cloud_api.seed._make_in_store`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Table, and_, bindparam, delete, func, select, text, update

from cloud_api.db.models import (
    AlertEvent,
    Customer,
    Device,
    FaceSample,
    LineItem,
    PaymentToken,
    Receipt,
    RecognitionDecision,
    RollupCustomerFirst,
    Sighting,
    Store,
    Visit,
)

log = structlog.get_logger(__name__)

CHUNK = 500
#: a temporary index, dropped in the same transaction
_VISIT_RECEIPTS = "ix_seed_in_store_visit_receipts"


@dataclass(frozen=True)
class InStoreResult:
    stores: int
    customers_removed: int
    customers_moved: int  # enrolled again at their first captured checkout in a cloud store


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def keep_aggregates_only(connection: Connection, store_ids: Sequence[int]) -> InStoreResult:
    """Make `store_ids` in-store stores and remove their personal rows (see the module)."""
    stores = sorted(store_ids)
    if not stores:
        return InStoreResult(0, 0, 0)
    sightings, visits, receipts = _table(Sighting), _table(Visit), _table(Receipt)
    items, customers = _table(LineItem), _table(Customer)
    connection.execute(
        update(_table(Store)).where(_table(Store).c.id.in_(stores)).values(mode="store")
    )

    # who is touched: customers seen there, and those enrolled there
    touched = set(
        connection.scalars(
            select(visits.c.customer_id).where(visits.c.store_id.in_(stores)).distinct()
        )
    )
    enrolled_there = sorted(
        connection.scalars(select(customers.c.id).where(customers.c.first_store_id.in_(stores)))
    )
    touched |= set(enrolled_there)

    # where those enrolled there are first captured in a cloud store, if anywhere
    moved: dict[int, tuple[datetime, int]] = {}
    for chunk in _chunks(enrolled_there):
        rows = connection.execute(
            select(visits.c.customer_id, visits.c.at, visits.c.store_id)
            .where(
                visits.c.customer_id.in_(chunk),
                visits.c.kind == "checkout",
                visits.c.store_id.not_in(stores),
            )
            .order_by(visits.c.customer_id, visits.c.at, visits.c.id)
        )
        for customer_id, at, store_id in rows:
            moved.setdefault(int(customer_id), (at, int(store_id)))
    removed = [c for c in enrolled_there if c not in moved]

    # the in-store stores' raw rows, and their tills and cameras (they talk to their store
    # server; head office refuses them anyway). Deleting a receipt looks for visits pointing
    # at it (a foreign key): without an index on that column, one scan of visits per receipt
    connection.execute(text(f"CREATE INDEX {_VISIT_RECEIPTS} ON visits (receipt_id)"))
    for model in (
        LineItem,
        Visit,
        RecognitionDecision,
        Receipt,
        Sighting,
        FaceSample,
        AlertEvent,
        Device,
    ):
        table = _table(model)
        connection.execute(delete(table).where(table.c.store_id.in_(stores)))
    connection.execute(text(f"DROP INDEX {_VISIT_RECEIPTS}"))

    # customers who exist only because of them: their cloud rows become anonymous
    for chunk in _chunks(removed):
        connection.execute(
            update(sightings)
            .where(sightings.c.customer_id.in_(chunk))
            .values(customer_id=None, is_vip=False)
        )
        for table in (receipts, items):
            connection.execute(
                update(table).where(table.c.customer_id.in_(chunk)).values(customer_id=None)
            )
        for owned in (Visit, FaceSample, PaymentToken, RollupCustomerFirst):
            owned_rows = _table(owned)
            connection.execute(delete(owned_rows).where(owned_rows.c.customer_id.in_(chunk)))
        connection.execute(delete(customers).where(customers.c.id.in_(chunk)))

    # customers enrolled again in a cloud store: nothing of theirs before that
    if moved:
        regions = {int(s): int(r) for s, r in connection.execute(select(Store.id, Store.region_id))}
        params = [
            {"c_id": c, "new_at": at, "new_store": store, "new_region": regions[store]}
            for c, (at, store) in sorted(moved.items())
        ]
        connection.execute(
            update(sightings)
            .where(
                sightings.c.customer_id == bindparam("c_id"),
                sightings.c.at < bindparam("new_at"),
            )
            .values(customer_id=None, is_vip=False),
            params,
        )
        connection.execute(
            delete(visits).where(
                visits.c.customer_id == bindparam("c_id"), visits.c.at < bindparam("new_at")
            ),
            params,
        )
        joined_before = and_(
            customers.c.id == bindparam("c_id"), customers.c.consent_at < bindparam("new_at")
        )
        connection.execute(  # no sighting of theirs is a member's any more
            update(sightings)
            .where(
                sightings.c.customer_id == bindparam("c_id"),
                select(customers.c.id).where(joined_before).exists(),
            )
            .values(is_vip=False),
            params,
        )
        connection.execute(
            update(customers)
            .where(joined_before)
            .values(vip_number=None, name=None, level=None, consent_at=None),
            params,
        )
        connection.execute(
            update(customers)
            .where(customers.c.id == bindparam("c_id"))
            .values(
                created_at=bindparam("new_at"),
                first_store_id=bindparam("new_store"),
                region_id=bindparam("new_region"),
            ),
            params,
        )

    # the figures the service keeps per customer, from what is left
    kept = sorted(touched.difference(removed))
    checkouts = (
        select(func.count())
        .where(visits.c.customer_id == customers.c.id, visits.c.kind == "checkout")
        .scalar_subquery()
    )
    spend = (
        select(func.coalesce(func.sum(receipts.c.total), Decimal(0)))
        .where(receipts.c.customer_id == customers.c.id)
        .scalar_subquery()
    )
    last_visit = select(func.max(visits.c.at)).where(visits.c.customer_id == customers.c.id)
    for chunk in _chunks(kept):
        connection.execute(
            update(customers)
            .where(customers.c.id.in_(chunk))
            .values(
                visit_count=checkouts,
                lifetime_spend=spend,
                last_seen_at=func.coalesce(last_visit.scalar_subquery(), customers.c.created_at),
            )
        )
    result = InStoreResult(len(stores), len(removed), len(moved))
    log.info(
        "seed_in_store_stores_stripped",
        stores=result.stores,
        customers_removed=result.customers_removed,
        customers_moved=result.customers_moved,
    )
    return result
