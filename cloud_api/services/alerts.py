"""Staff alerts as server-sent events, read from the database so every process serves all.

A stream outlives the request's authentication: `alerts_for` therefore re-checks the
following device's key at every poll and answers None once it was revoked (the stream
ends), before anything raised after the revocation is handed out.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db.models import AlertEvent
from cloud_api.services.context import Caller, Services
from cloud_api.services.devices import key_active
from contract import VipArrival


def alerts_for(
    services: Services, caller: Caller, after_id: int, limit: int = 100
) -> list[VipArrival] | None:
    """The caller's store's alerts after `after_id`; None when the caller's key is revoked.

    The key is checked after the alerts are read: an alert raised after the revocation was
    committed is then either not read, or read together with the revocation (a later or the
    same snapshot), so it is never delivered.
    """
    with services.sessions() as session:
        batch = _alerts_after(session, caller.store_id, after_id, limit)
        return batch if key_active(session, caller.device_id) else None


def _alerts_after(session: Session, store_id: int, after_id: int, limit: int) -> list[VipArrival]:
    events = session.scalars(
        select(AlertEvent)
        .where(AlertEvent.store_id == store_id, AlertEvent.id > after_id)
        .order_by(AlertEvent.id)
        .limit(limit)
    ).all()
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
        if e.kind == "vip_arrival"
    ]


def latest_alert_id(services: Services, store_id: int) -> int:
    with services.sessions() as session:
        return (
            session.scalar(
                select(AlertEvent.id)
                .where(AlertEvent.store_id == store_id)
                .order_by(AlertEvent.id.desc())
                .limit(1)
            )
            or 0
        )
