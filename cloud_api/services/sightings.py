"""POST /v1/sightings: the entrance camera counts visitors and raises VIP arrivals.

Entrance faces are identified but never enrolled: a customer is created only at a checkout,
where a receipt gives the visit a purpose. A member is named to staff only when the face is
sure enough for the member card (the policy's member target); children are not matched. A
member's arrival becomes an alert event for the store's staff (`vip_arrival`), and so does a
frequent customer's who is not a member (`frequent_arrival`: at least `frequent_visits`
visits; no photo, no name), at most once per `ALERT_COOLDOWN` per customer and store. Staff
(employees) and customers who opted out are never announced.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import AlertEvent, Customer, Sighting, Visit, utcnow
from cloud_api.services import alerts
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import Forbidden
from cloud_api.services.identity import judge_face
from contract import SightingRequest, SightingResponse

log = structlog.get_logger(__name__)

ALERT_COOLDOWN = timedelta(minutes=30)


def sighting(services: Services, caller: Caller, request: SightingRequest) -> SightingResponse:
    if caller.device_kind != "entrance":
        raise Forbidden("only entrance devices report sightings")
    demographics = services.estimate(request.face_crop)
    services.recognizer.catch_up()
    now = utcnow()
    with services.sessions() as session, session.begin():
        verdict = judge_face(session, services, caller, request.embeddings, demographics)
        # a possible member is counted but not named: staff are only told when it is sure
        sure = verdict.outcome in ("member", "returning")
        customer = verdict.candidate if sure else None
        is_vip = customer is not None and customer.is_member
        session.add(
            Sighting(
                store_id=caller.store_id,
                device_id=caller.device_id,
                customer_id=customer.id if customer else None,
                is_vip=is_vip,
                at=request.captured_at,
            )
        )
        if customer is not None:
            customer.last_seen_at = now
            session.add(
                Visit(
                    customer_id=customer.id,
                    store_id=caller.store_id,
                    device_id=caller.device_id,
                    kind="entrance",
                    at=request.captured_at,
                )
            )
            kind = _arrival_kind(customer, services.settings.frequent_visits)
            if kind is not None:
                crop = request.face_crop.jpeg_base64 if request.face_crop else None
                _alert(session, caller.store_id, customer, kind, now, crop)
        session.flush()
        visitors = _visitors_today(session, caller.store_id, now)
        answer = SightingResponse(
            customer_id=customer.id if customer else None,
            status="returning" if customer else "new",
            is_vip=is_vip,
            visitors_today=visitors,
        )
    log.info("sighting", store=caller.store_id, customer=answer.customer_id, vip=is_vip)
    return answer


def _arrival_kind(customer: Customer, frequent_visits: int) -> str | None:
    """The alert a recognised customer's arrival raises, if any."""
    if customer.is_staff or customer.opted_out_at is not None:
        return None
    if customer.is_member:
        return alerts.VIP_ARRIVAL
    if frequent_visits and customer.visit_count >= frequent_visits:
        return alerts.FREQUENT_ARRIVAL
    return None


def _alert(
    session: Session,
    store_id: int,
    customer: Customer,
    kind: str,
    now: datetime,
    face: str | None,
) -> None:
    """`face`: the entrance's chip (base64 JPEG, a few KB), shown to staff for a member only
    (who consented). It lives in the alert's payload, deleted with the customer and by
    retention (`staff_alert_retention_hours`)."""
    recent = session.scalars(
        select(AlertEvent.customer_id).where(
            AlertEvent.store_id == store_id,
            AlertEvent.kind.in_(alerts.ARRIVALS),
            AlertEvent.created_at >= now - ALERT_COOLDOWN,
        )
    ).all()
    if customer.id in recent:
        return
    payload: dict[str, object] = {"customer_id": customer.id, "at": now.isoformat()}
    if kind == alerts.VIP_ARRIVAL:
        payload |= {
            "vip_number": customer.vip_number,
            "name": customer.name,
            "level": customer.level or "standard",
            "face_jpeg_base64": face,
        }
    alerts.raise_alert(session, store_id, kind, payload, customer_id=customer.id, at=now)


def _visitors_today(session: Session, store_id: int, now: datetime) -> int:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        session.scalar(
            select(func.count())
            .select_from(Sighting)
            .where(Sighting.store_id == store_id, Sighting.at >= midnight)
        )
        or 0
    )
