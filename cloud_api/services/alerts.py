"""Staff alerts as server-sent events, read from the database so every process serves all.

The reads here serve `cloud_api.services.alert_hub`, which reads once per round for all of a
process's open streams (never once per stream): which VIP alerts the followed stores have
(ids only), the full alerts only for those some stream has not been handed yet, then which
followed devices' keys are still active.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import AlertEvent
from cloud_api.services.context import Services
from contract import VipArrival

VIP_ARRIVAL = "vip_arrival"
_IN_CHUNK = 500


def alert_ids_after(
    session: Session, store_ids: Iterable[int], after_id: int, limit: int
) -> list[tuple[int, int]]:
    """(id, store id) of the stores' VIP alerts with ids above `after_id`, oldest first, at
    most `limit`: a cheap read (no payloads) a round can repeat over its look-back."""
    rows = session.execute(
        select(AlertEvent.id, AlertEvent.store_id)
        .where(
            AlertEvent.store_id.in_(sorted(set(store_ids))),
            AlertEvent.id > after_id,
            AlertEvent.kind == VIP_ARRIVAL,
        )
        .order_by(AlertEvent.id)
        .limit(limit)
    ).all()
    return [(alert_id, store_id) for alert_id, store_id in rows]


def arrivals(session: Session, alert_ids: Iterable[int]) -> list[VipArrival]:
    """The VIP alerts with these ids (those still stored), oldest first."""
    wanted = sorted(set(alert_ids))
    events: list[AlertEvent] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        events += session.scalars(
            select(AlertEvent).where(AlertEvent.id.in_(chunk), AlertEvent.kind == VIP_ARRIVAL)
        ).all()
    events.sort(key=lambda e: e.id)
    return [
        VipArrival(
            event_id=e.id,
            store_id=e.store_id,
            customer_id=e.payload["customer_id"],
            vip_number=e.payload["vip_number"],
            name=e.payload["name"],
            level=e.payload["level"],
            at=e.created_at,
            face_jpeg_base64=e.payload.get("face_jpeg_base64"),
        )
        for e in events
    ]


def latest_alert_id(services: Services) -> int:
    """The newest alert's id, of any store: where a stream that starts "from now" resumes
    (nothing of its store lies between its own newest alert and this one, and a hub's round
    then need not look any further back for it)."""
    with services.sessions() as session:
        return session.scalar(select(func.max(AlertEvent.id))) or 0
