"""Staff alerts as server-sent events, read from the database so every process serves all."""

from __future__ import annotations

from sqlalchemy import select

from cloud_api.db.models import AlertEvent
from cloud_api.services.context import Services
from contract import VipArrival


def alerts_after(
    services: Services, store_id: int, after_id: int, limit: int = 100
) -> list[VipArrival]:
    with services.sessions() as session:
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
