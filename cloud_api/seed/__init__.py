"""Synthetic chain data for the dashboard and the benchmarks: `storesight-cloud seed`.

`seed(url, stores=N, days=D)` adds to a migrated database, with no activity yet, a chain of
stores with their regions, a till and an entrance device each, a product catalogue, and
`days` days (ending `end`, default today UTC) of what the devices would have reported:
entrance sightings, receipts with line items, customers and their visits.

The model behind the numbers (all draws from one `numpy` generator, so a `seed` gives the
same data every time, on SQLite and on PostgreSQL alike):

- Traffic per store and day = store size x weekday (weekends busier) x season (a yearly
  swing peaking at Christmas with a summer dip, a Christmas run-up, January sales, Black
  Friday; closed on 25 December and 1 January) x the store's own trend x day-to-day noise.
- Visitors are people of the store's neighbourhood: a loyal core who come about weekly,
  regulars (monthly), occasional shoppers, each with Poisson visits over an active period
  (some are there from the start, others move in, and people drift away), plus one-off
  visitors. About 6% of visits go to another store of the same region.
- Arrival hours (opening hours 8-21) follow the visitor: older people come in the morning,
  working-age people at lunch and early evening, the young in the afternoon and evening;
  weekends peak around midday. Every visitor passes the entrance camera: one `Sighting`.
- About a third of visitors buy: a `Receipt` with 1-6 line items (bigger baskets at
  weekends) from the categories their age and gender prefer (young: sweets, snacks, drinks;
  older: tea, bakery), with seasonal categories (gifts and sweets in December, drinks in
  summer) and some promotions; the total is the sum of the items.
- Customers exist as the live service creates them: at a checkout where the face was
  captured (~76% of receipts), that is `created_at` and `first_store_id`. Afterwards the
  entrance recognises them (~93% of the time): identified sightings, `Visit(kind="entrance")`;
  their later captured receipts are `Visit(kind="checkout")`. So a person's first visit is
  never identified at the door, and identified traffic grows as the clientele is enrolled.
- `visit_count` counts checkout visits and `lifetime_spend` sums their receipts (what the
  service's checkout does); `last_seen_at` is the last visit of any kind.
- Some customers join the VIP programme (mostly the loyal ones): consent, `VIP-000123`,
  a name, a level by spend; their sightings after consent have `is_vip`.
- 2-3 staff per store (`is_staff`, enrolled before the first day) come in before opening on
  most days, often again after lunch, and sometimes buy something.

`receipts=N` scales traffic so that about N receipts are generated in all.

Rows are written with explicit ids in time order, in one transaction: Core `executemany`
batches on SQLite; psycopg 3's COPY on PostgreSQL (then the id sequences are moved past the
new ids and the tables analysed). A database that already holds customers, sightings,
receipts or visits is refused, so existing data is never mixed with synthetic data.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import structlog
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from tqdm import tqdm

from cloud_api.db.migrate import display_url
from cloud_api.db.models import Customer, Device, LineItem, Receipt, Sighting, Store, Visit
from cloud_api.db.session import make_engine
from cloud_api.seed.catalogue import MAX_DAYS, MAX_RECEIPTS, MAX_STORES
from cloud_api.seed.generate import _calendar, _generate
from cloud_api.seed.instore import keep_aggregates_only
from cloud_api.seed.results import SeedError, SeedSummary
from cloud_api.seed.write import _BULK, _bulk_load, _refuse_activity, _total_rows, _write

__all__ = ["SeedError", "SeedSummary", "check_arguments", "seed"]

log = structlog.get_logger(__name__)


def check_arguments(
    stores: int, days: int, receipts: int | None, seed: int, in_store: int = 0
) -> None:
    """Raise SeedError for arguments `seed` refuses (also what the CLI checks)."""
    if not 1 <= stores <= MAX_STORES:
        raise SeedError(f"stores must be between 1 and {MAX_STORES}, not {stores}")
    if not 0 <= in_store <= stores:
        raise SeedError(f"in-store stores must be between 0 and {stores}, not {in_store}")
    if not 1 <= days <= MAX_DAYS:
        raise SeedError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    if receipts is not None and not 1 <= receipts <= MAX_RECEIPTS:
        raise SeedError(f"receipts must be between 1 and {MAX_RECEIPTS}, not {receipts}")
    if seed < 0:
        raise SeedError(f"seed must not be negative, not {seed}")


def seed(
    url: str,
    *,
    stores: int,
    days: int,
    end: date | None = None,
    receipts: int | None = None,
    seed: int = 0,
    in_store: int = 0,
    progress: bool = True,
) -> SeedSummary:
    """Add `stores` stores with `days` days of activity ending `end` (default today, UTC).

    The database must be migrated (SchemaNotCurrent otherwise) and hold no customers,
    sightings, receipts or visits (SeedError otherwise); regions, stores, devices, products
    and users already there stay, and new names and codes avoid theirs. `receipts` scales
    traffic to about that many receipts. The same arguments and `seed` give the same data.
    Everything is written in one transaction: on any error nothing is added.

    `in_store`: the last that many stores are in-store stores (`stores.mode = 'store'`):
    head office keeps only their rollups, as if their store servers had pushed them, and
    none of their customers, sightings, receipts or visits, nor their tills and cameras
    (`cloud_api.seed.instore`). The summary then counts the rows head office keeps.
    """
    from cloud_api.db.migrate import ensure_current, is_sqlite

    check_arguments(stores, days, receipts, seed, in_store)
    end = end if end is not None else datetime.now(UTC).date()
    shown = display_url(url)
    ensure_current(url)
    started = time.perf_counter()
    log.info(
        "seed_started",
        database=shown,
        stores=stores,
        days=days,
        end=end.isoformat(),
        receipts=receipts,
        seed=seed,
        in_store=in_store,
    )
    postgres = not is_sqlite(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:  # before minutes of work, not only after
            _refuse_activity(connection, url)
        calendar = _calendar(end, days)
        activity = _generate(np.random.default_rng(seed), stores, calendar, receipts)
        if receipts is not None and len(activity.receipt_at) > 0:
            # one visit a day at most, staff purchases, rounding: aim again, same seed
            correction = receipts / len(activity.receipt_at)
            activity = _generate(
                np.random.default_rng(seed), stores, calendar, receipts, correction
            )
        log.info(
            "seed_generated",
            receipts=len(activity.receipt_at),
            line_items=len(activity.item_receipt),
            sightings=len(activity.sighting_at),
            seconds=round(time.perf_counter() - started, 2),
        )
        total = _total_rows(activity, len(activity.chain.region_names))
        with (
            tqdm(
                total=total,
                unit="rows",
                unit_scale=True,
                desc="seeding",
                disable=not progress,
                file=sys.stderr,
            ) as bar,
            engine.begin() as connection,
        ):
            _refuse_activity(connection, url)
            loading = (
                _bulk_load(connection, [m.__tablename__ for m in _BULK])
                if postgres
                else nullcontext()
            )
            with loading:
                summary = _write(connection, activity, calendar, seed, postgres, bar)
                bar.set_description("seeded; indexing" if postgres else "seeded; committing")
        with engine.begin() as connection:  # planner statistics for the new rows
            connection.execute(text("ANALYZE"))
        from cloud_api.reports import rollups

        with Session(engine) as session, session.begin():  # the reports' rollups, at once
            rollups.rebuild(session)
            if in_store:  # in the same transaction: never half in-store
                summary = _make_in_store(session, summary, in_store)
        if postgres:
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    log.info(
        "seed_finished",
        database=shown,
        seconds=round(time.perf_counter() - started, 1),
        **{name: count for name, count in summary.rows() if not name.startswith(" ")},
    )
    return summary


def _make_in_store(session: Session, summary: SeedSummary, count: int) -> SeedSummary:
    """The last `count` seeded stores become in-store stores, as if each had its own store
    server: every day of their rollups (just computed, as their store server would) is read
    as the store server reads it for head office (`upstream.days.read_day`), their personal
    rows are removed, head office's own rollups are rebuilt without them, and their days are
    stored as head office stores a push (`upstream.days.replace_day`). The summary's counts
    become what head office keeps (the database held no activity before)."""
    from cloud_api.reports import rollups
    from cloud_api.upstream.days import read_day, replace_day

    # the seeded stores have the highest ids (`_next_id`)
    chosen = session.execute(
        select(Store.id, Store.code).order_by(Store.id.desc()).limit(count)
    ).all()
    pushed = [
        (row.id, read_day(session, row.id, day))
        for row in chosen
        for _, day in sorted(rollups.stored_days(session, row.id))
    ]
    keep_aggregates_only(session.connection(), [row.id for row in chosen])
    for store_id, upstream_day in pushed:
        replace_day(session, store_id, upstream_day)
    rollups.rebuild(session)  # leaves the in-store stores' days alone (UPSTREAM_STORES)
    counted = {
        model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (Customer, Sighting, Receipt, LineItem, Visit, Device)
    }
    staff = session.scalar(select(func.count()).where(Customer.is_staff.is_(True))) or 0
    members = session.scalar(select(func.count()).where(Customer.vip_number.is_not(None)))
    return replace(
        summary,
        devices=counted["devices"],
        customers=counted["customers"],
        staff=int(staff),
        members=int(members or 0),
        sightings=counted["sightings"],
        receipts=counted["receipts"],
        line_items=counted["line_items"],
        visits=counted["visits"],
        in_store_codes=tuple(sorted(row.code for row in chosen)),
    )
