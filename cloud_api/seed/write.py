"""Writing the generated activity to the database: per-backend value formats, batched
inserts or COPY, id sequences, and the rows that make up `SeedSummary` (`_write`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import numpy as np
import structlog
from sqlalchemy import Connection, Table, func, insert, select, text
from tqdm import tqdm

from cloud_api.db.migrate import display_url
from cloud_api.db.models import (
    Customer,
    Device,
    LineItem,
    Product,
    Receipt,
    Region,
    Sighting,
    Store,
    Visit,
)
from cloud_api.security import new_api_key
from cloud_api.seed.catalogue import (
    AGE_ERROR_YEARS,
    BATCH_ROWS,
    CATALOGUE,
    CURRENCY,
    FIRST_NAMES,
    GENDER_MISREAD,
    LAST_NAMES,
    MEMBER_LEVELS,
)
from cloud_api.seed.generate import I64, _Activity, _Calendar
from cloud_api.seed.results import SeedError, SeedSummary

log = structlog.get_logger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTIVITY = (Customer, Sighting, Receipt, Visit)
_BULK = (Customer, Receipt, LineItem, Sighting, Visit)
_SEQUENCED = (Region, Store, Device, Product, Customer, Receipt, LineItem, Sighting, Visit)

Columns = Callable[[int, int], Sequence[list[Any]]]


class _Format:
    """Python values for one backend: strings COPY parses on PostgreSQL, typed values for Core."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def ts(self, seconds: I64) -> list[Any]:
        if self.postgres:
            text_values = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
            return [f"{value}+00" for value in text_values.tolist()]
        return [_EPOCH + timedelta(seconds=value) for value in seconds.tolist()]

    def optional_ts(self, seconds: I64) -> list[Any]:
        values = self.ts(np.maximum(seconds, 0))
        return [None if s < 0 else v for s, v in zip(seconds.tolist(), values, strict=True)]

    def money(self, cents: I64) -> list[Any]:
        if self.postgres:
            return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]
        return [Decimal(c).scaleb(-2) for c in cents.tolist()]

    @staticmethod
    def optional_id(ids: I64, offset: int) -> list[Any]:
        return [None if i < 0 else i + offset for i in ids.tolist()]

    @staticmethod
    def ids(ids: I64, offset: int) -> list[Any]:
        return list((ids + offset).tolist())

    def empty_json(self, n: int) -> list[Any]:
        return ["{}"] * n if self.postgres else [{}] * n


class _Writer:
    """Bulk rows into one table: COPY on PostgreSQL, executemany batches elsewhere."""

    def __init__(self, connection: Connection, postgres: bool, bar: tqdm[Any]) -> None:
        self.connection = connection
        self.postgres = postgres
        self.bar = bar
        self.written: dict[str, int] = {}

    def write(self, table: Table, names: Sequence[str], n: int, columns: Columns) -> None:
        self.written[table.name] = self.written.get(table.name, 0) + n
        if n == 0:
            return
        self.bar.set_description(f"seeding {table.name}")
        started = time.perf_counter()
        self._rows(table, names, n, columns)
        log.info(
            "seed_table_written",
            table=table.name,
            rows=n,
            seconds=round(time.perf_counter() - started, 2),
        )

    def _rows(self, table: Table, names: Sequence[str], n: int, columns: Columns) -> None:
        if self.postgres:
            raw = cast(Any, self.connection.connection.driver_connection)
            statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for start in range(0, n, BATCH_ROWS):
                    stop = min(n, start + BATCH_ROWS)
                    for row in zip(*columns(start, stop), strict=True):
                        copy.write_row(row)
                    self.bar.update(stop - start)
            return
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            rows = [
                dict(zip(names, row, strict=True))
                for row in zip(*columns(start, stop), strict=True)
            ]
            self.connection.execute(insert(table), rows)
            self.bar.update(stop - start)


def _next_id(connection: Connection, table: Table, postgres: bool) -> int:
    """The first id never used in `table`: past its rows and past deleted rows' ids."""
    top = int(connection.scalar(select(func.max(table.c.id))) or 0)
    if postgres:
        sequence = connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
        )
        if sequence:
            last, called = connection.execute(
                text(f"SELECT last_value, is_called FROM {sequence}")
            ).one()
            top = max(top, int(last) if called else int(last) - 1)
    else:
        used = connection.scalar(
            text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table.name}
        )
        top = max(top, int(used or 0))
    return top + 1


@contextmanager
def _bulk_load(connection: Connection, tables: Sequence[str]) -> Iterator[None]:
    """PostgreSQL: load the (empty) `tables` without their foreign keys and secondary indexes.

    Checking a foreign key row by row locks the parent row for each child, and indexes grow
    one entry at a time: several times slower than COPY itself. Both are dropped here and
    recreated, from their own definitions in the catalogue, after the rows are in: one
    validating join per foreign key, one sort per index. All in the seed's transaction, so
    an error leaves the schema as it was.
    """
    foreign_keys = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY 1, 2"
        ),
        {"tables": list(tables)},
    ).all()
    indexes = connection.execute(
        text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = ANY(CAST(:tables AS regclass[])) "
            "AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY 1"
        ),
        {"tables": list(tables)},
    ).all()
    for table, name, _ in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        connection.execute(text(f"DROP INDEX {name}"))
    yield
    started = time.perf_counter()
    connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for _, definition in indexes:
        connection.execute(text(definition))
    for table, name, definition in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    log.info(
        "seed_constraints_restored",
        foreign_keys=len(foreign_keys),
        indexes=len(indexes),
        seconds=round(time.perf_counter() - started, 2),
    )


def _refuse_activity(connection: Connection, url: str) -> None:
    found = {
        model.__tablename__: int(
            connection.scalar(select(func.count()).select_from(model.__table__)) or 0
        )
        for model in _ACTIVITY
    }
    held = [f"{count} {name}" for name, count in found.items() if count]
    if held:
        raise SeedError(
            f"database {display_url(url)} already holds {', '.join(held)}; "
            "seed only adds to a database without customers or activity (use a new database)"
        )


def _unused(names: Sequence[str], taken: set[str]) -> list[str]:
    chosen: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name} ({n})"
        taken.add(candidate)
        chosen.append(candidate)
    return chosen


def _store_codes(count: int, taken: set[str]) -> list[str]:
    codes: list[str] = []
    number = 0
    while len(codes) < count:
        number += 1
        code = f"S{number:03d}"
        if code not in taken:
            codes.append(code)
    return codes


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _write(
    connection: Connection,
    activity: _Activity,
    calendar: _Calendar,
    seed: int,
    postgres: bool,
    bar: tqdm[Any],
) -> SeedSummary:
    fmt = _Format(postgres)
    writer = _Writer(connection, postgres, bar)
    rng = np.random.default_rng([seed, 1])  # observation noise and names
    chain, people = activity.chain, activity.people
    n_stores = len(chain.names)
    setup_at = int(calendar.start[0]) - 30 * 86_400  # the chain was set up a month before

    def start_of(model: type[Any]) -> int:
        return _next_id(connection, _table(model), postgres)

    # regions, stores, devices, products
    region_names = _unused(chain.region_names, set(connection.scalars(select(Region.name))))
    region_start = start_of(Region)
    n_regions = len(region_names)
    writer.write(
        _table(Region),
        ["id", "name", "created_at"],
        n_regions,
        lambda a, b: [
            list(range(region_start + a, region_start + b)),
            region_names[a:b],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    codes = _store_codes(n_stores, set(connection.scalars(select(Store.code))))
    store_start = start_of(Store)
    store_ids = np.arange(n_stores, dtype=np.int64) + store_start
    writer.write(
        _table(Store),
        ["id", "region_id", "code", "name", "created_at"],
        n_stores,
        lambda a, b: [
            store_ids[a:b].tolist(),
            fmt.ids(chain.region[a:b], region_start),
            codes[a:b],
            [f"{code} {name}" for code, name in zip(codes[a:b], chain.names[a:b], strict=True)],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    device_start = start_of(Device)
    till_ids = device_start + 2 * np.arange(n_stores, dtype=np.int64)
    entrance_ids = till_ids + 1
    keys = [new_api_key() for _ in range(2 * n_stores)]  # nobody signs in with these
    writer.write(
        _table(Device),
        ["id", "store_id", "kind", "name", "key_prefix", "key_hash", "created_at"],
        2 * n_stores,
        lambda a, b: [
            list(range(device_start + a, device_start + b)),
            [int(store_ids[i // 2]) for i in range(a, b)],
            ["till" if i % 2 == 0 else "entrance" for i in range(a, b)],
            ["Till 1" if i % 2 == 0 else "Entrance" for i in range(a, b)],
            [key[1] for key in keys[a:b]],
            [key[2] for key in keys[a:b]],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    known_skus = set(connection.scalars(select(Product.sku)))
    new_products = [p for p in CATALOGUE if p[0] not in known_skus]
    bar.total -= len(CATALOGUE) - len(new_products)  # products the catalogue already has
    product_start = start_of(Product)
    writer.write(
        _table(Product),
        ["id", "sku", "name", "category", "brand", "price", "active"],
        len(new_products),
        lambda a, b: [
            list(range(product_start + a, product_start + b)),
            *[list(values) for values in zip(*new_products[a:b], strict=True)][:4],
            fmt.money(
                np.array([round(float(p[4]) * 100) for p in new_products[a:b]], dtype=np.int64)
            ),
            [True] * (b - a),
        ],
    )

    # customers, with the figures the service keeps up to date
    n_customers = len(activity.customer_person)
    customer_start = start_of(Customer)
    person = activity.customer_person
    checkout = activity.visit_checkout
    visit_count = np.bincount(activity.visit_customer[checkout], minlength=n_customers)
    identified = activity.receipt_customer >= 0
    spend = np.zeros(n_customers, dtype=np.int64)
    np.add.at(spend, activity.receipt_customer[identified], activity.receipt_total[identified])
    last_seen = activity.customer_created.copy()
    np.maximum.at(last_seen, activity.visit_customer, activity.visit_at)
    female = people.female[person] ^ (rng.random(n_customers) < GENDER_MISREAD)
    age = np.round(
        np.clip(people.age[person] + rng.normal(0, AGE_ERROR_YEARS, n_customers), 16, 85), 1
    )
    members = np.flatnonzero(activity.consent_at >= 0)
    members = members[np.lexsort((members, activity.consent_at[members]))]
    vip_number: list[str | None] = [None] * n_customers
    member_name: list[str | None] = [None] * n_customers
    level: list[str | None] = [None] * n_customers
    spend_rank = np.empty(len(members), dtype=np.float64)
    spend_rank[np.argsort(-spend[members], kind="stable")] = np.arange(len(members)) / max(
        len(members), 1
    )
    firsts = rng.integers(0, len(FIRST_NAMES["female"]), len(members))
    lasts = rng.integers(0, len(LAST_NAMES), len(members))
    for k, customer in enumerate(members.tolist()):
        vip_number[customer] = f"VIP-{k + 1:06d}"
        gender = "female" if female[customer] else "male"
        member_name[customer] = f"{FIRST_NAMES[gender][firsts[k]]} {LAST_NAMES[lasts[k]]}"
        rank = spend_rank[k]
        level[customer] = (
            MEMBER_LEVELS[2]
            if rank < 0.1
            else MEMBER_LEVELS[1]
            if rank < 0.35
            else MEMBER_LEVELS[0]
        )
    store_region = chain.region
    first_store = activity.customer_first_store
    staff = people.staff[person]
    writer.write(
        _table(Customer),
        [
            "id",
            "region_id",
            "first_store_id",
            "vip_number",
            "name",
            "level",
            "consent_at",
            "gender",
            "age_years",
            "visit_count",
            "lifetime_spend",
            "is_staff",
            "created_at",
            "last_seen_at",
        ],  # fmt: skip
        n_customers,
        lambda a, b: [
            list(range(customer_start + a, customer_start + b)),
            fmt.ids(store_region[first_store[a:b]], region_start),
            fmt.ids(first_store[a:b], store_start),
            vip_number[a:b],
            member_name[a:b],
            level[a:b],
            fmt.optional_ts(activity.consent_at[a:b]),
            ["female" if f else "male" for f in female[a:b].tolist()],
            age[a:b].tolist(),
            visit_count[a:b].tolist(),
            fmt.money(spend[a:b]),
            staff[a:b].tolist(),
            fmt.ts(activity.customer_created[a:b]),
            fmt.ts(last_seen[a:b]),
        ],
    )

    # receipts and their items
    n_receipts = len(activity.receipt_at)
    receipt_start = start_of(Receipt)
    r_store = activity.receipt_store
    per_store = np.bincount(r_store, minlength=n_stores)
    by_store = np.argsort(r_store, kind="stable")
    number = np.empty(n_receipts, dtype=np.int64)
    number[by_store] = np.arange(n_receipts) - np.repeat(
        np.cumsum(per_store) - per_store, per_store
    )
    delay = rng.integers(1, 5, n_receipts)
    writer.write(
        _table(Receipt),
        [
            "id",
            "store_id",
            "device_id",
            "customer_id",
            "idempotency_key",
            "number",
            "currency",
            "total",
            "scanned_at",
            "created_at",
            "response",
        ],  # fmt: skip
        n_receipts,
        lambda a, b: [
            list(range(receipt_start + a, receipt_start + b)),
            fmt.ids(r_store[a:b], store_start),
            till_ids[r_store[a:b]].tolist(),
            fmt.optional_id(activity.receipt_customer[a:b], customer_start),
            [f"seed-{seed}-{i}" for i in range(receipt_start + a, receipt_start + b)],
            [
                f"{codes[s]}-{n + 1:07d}"
                for s, n in zip(r_store[a:b].tolist(), number[a:b].tolist(), strict=True)
            ],
            [CURRENCY] * (b - a),
            fmt.money(activity.receipt_total[a:b]),
            fmt.ts(activity.receipt_at[a:b]),
            fmt.ts(activity.receipt_at[a:b] + delay[a:b]),
            fmt.empty_json(b - a),
        ],
    )
    catalogue = np.array(CATALOGUE, dtype=object)
    item_receipt = activity.item_receipt
    n_lines = len(item_receipt)
    line_start = start_of(LineItem)
    writer.write(
        _table(LineItem),
        [
            "id",
            "receipt_id",
            "sku",
            "name",
            "category",
            "brand",
            "quantity",
            "unit_price",
            "store_id",
            "sold_at",
            "customer_id",
        ],  # fmt: skip
        n_lines,
        lambda a, b: [
            list(range(line_start + a, line_start + b)),
            fmt.ids(item_receipt[a:b], receipt_start),
            *[catalogue[activity.item_product[a:b], c].tolist() for c in range(4)],
            activity.item_quantity[a:b].tolist(),
            fmt.money(activity.item_price[a:b]),
            fmt.ids(r_store[item_receipt[a:b]], store_start),
            fmt.ts(activity.receipt_at[item_receipt[a:b]]),
            fmt.optional_id(activity.receipt_customer[item_receipt[a:b]], customer_start),
        ],
    )

    # entrance sightings, then visits
    s_store = activity.sighting_store
    sighting_start = start_of(Sighting)
    writer.write(
        _table(Sighting),
        ["id", "store_id", "device_id", "customer_id", "is_vip", "at"],
        len(s_store),
        lambda a, b: [
            list(range(sighting_start + a, sighting_start + b)),
            fmt.ids(s_store[a:b], store_start),
            entrance_ids[s_store[a:b]].tolist(),
            fmt.optional_id(activity.sighting_customer[a:b], customer_start),
            activity.sighting_vip[a:b].tolist(),
            fmt.ts(activity.sighting_at[a:b]),
        ],
    )
    v_store = activity.visit_store
    visit_start = start_of(Visit)
    writer.write(
        _table(Visit),
        ["id", "customer_id", "store_id", "device_id", "kind", "receipt_id", "at"],
        len(v_store),
        lambda a, b: [
            list(range(visit_start + a, visit_start + b)),
            fmt.ids(activity.visit_customer[a:b], customer_start),
            fmt.ids(v_store[a:b], store_start),
            np.where(checkout[a:b], till_ids[v_store[a:b]], entrance_ids[v_store[a:b]]).tolist(),
            ["checkout" if c else "entrance" for c in checkout[a:b].tolist()],
            fmt.optional_id(activity.visit_receipt[a:b], receipt_start),
            fmt.ts(activity.visit_at[a:b]),
        ],
    )

    if postgres:  # explicit ids: move the sequences past them
        for model in _SEQUENCED:
            name = model.__tablename__
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) "
                    f"FROM {name} HAVING max(id) IS NOT NULL"
                )
            )
    written = writer.written
    return SeedSummary(
        regions=n_regions,
        stores=n_stores,
        devices=2 * n_stores,
        products=len(new_products),
        customers=n_customers,
        staff=int(staff.sum()),
        members=len(members),
        sightings=written["sightings"],
        receipts=written["receipts"],
        line_items=written["line_items"],
        visits=written["visits"],
        first_day=calendar.days[0],
        last_day=calendar.days[-1],
    )


def _total_rows(activity: _Activity, n_regions: int) -> int:
    n_stores = len(activity.chain.names)
    return (
        n_regions
        + 3 * n_stores
        + len(CATALOGUE)
        + len(activity.customer_person)
        + len(activity.receipt_at)
        + len(activity.item_receipt)
        + len(activity.sighting_at)
        + len(activity.visit_at)
    )
