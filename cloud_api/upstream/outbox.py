"""The store server's upstream outbox: `upstream_pending` rows, one per changed store-day.

Rows are written in the transaction that recomputes the rollups (so a change is never lost
between the two), and removed only when head office has accepted that day at that
generation: a day recomputed again while its push was in flight stays queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from cloud_api.db.models import UpstreamPending


def mark_pending(session: Session, days: Iterable[tuple[int, date]]) -> None:
    """Queue these (store id, day) pairs for head office (again, if already queued)."""
    wanted = sorted(set(days))
    if not wanted:
        return
    queued = {
        (row.store_id, row.day): row.generation
        for row in session.scalars(
            select(UpstreamPending).where(UpstreamPending.day.in_(sorted({d for _, d in wanted})))
        )
    }
    fresh = [{"store_id": s, "day": d, "generation": 1} for s, d in wanted if (s, d) not in queued]
    if fresh:
        session.execute(insert(UpstreamPending), fresh)
    for store_id, day in (key for key in wanted if key in queued):
        session.execute(
            update(UpstreamPending)
            .where(UpstreamPending.store_id == store_id, UpstreamPending.day == day)
            .values(generation=UpstreamPending.generation + 1)
        )


def next_batch(session: Session, store_id: int, limit: int) -> list[tuple[int, date, int]]:
    """The store's oldest queued days: (store id, day, generation)."""
    rows = session.execute(
        select(UpstreamPending.store_id, UpstreamPending.day, UpstreamPending.generation)
        .where(UpstreamPending.store_id == store_id)
        .order_by(UpstreamPending.day)
        .limit(limit)
    ).all()
    return [(int(s), d, int(g)) for s, d, g in rows]


def acknowledge(session: Session, sent: Iterable[tuple[int, date, int]]) -> int:
    """Remove the days head office accepted, unless they changed again since (a newer
    generation); how many were removed."""
    removed = 0
    for store_id, day, generation in sent:
        result = session.execute(
            delete(UpstreamPending).where(
                UpstreamPending.store_id == store_id,
                UpstreamPending.day == day,
                UpstreamPending.generation == generation,
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def pending_count(session: Session, store_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(UpstreamPending)
            .where(UpstreamPending.store_id == store_id)
        )
        or 0
    )
