"""Staff alerts as server-sent events, read from the database so every process serves all.

An alert is a row of `alert_events`, of one of these kinds:

- `vip_arrival`: a member came in (payload: name, VIP number, level, the entrance's crop);
- `frequent_arrival`: a frequent customer who is not a member came in (payload: ids only);
- `arrival_greeted`: a staff member greeted an arrival's customer (payload: who, when);
- `arrivals_withdrawn`: arrivals that must leave every list at once, their customer deleted
  or opted out (payload: alert ids only).

The desktop staff window (a device's stream) is handed `vip_arrival` only; the staff app (a
user's stream) all of them. The reads here serve `cloud_api.services.alert_hub`, which reads
once per round for all of a process's open streams (never once per stream): which alerts the
followed stores have (ids and kinds only), the full alerts only for those some stream has not
been handed yet, then which followed devices' keys and users' sessions are still active.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud_api import change_feed
from cloud_api.db.models import AlertEvent, ArrivalGreeting
from cloud_api.services.context import Services
from contract import VipArrival

VIP_ARRIVAL = "vip_arrival"
FREQUENT_ARRIVAL = "frequent_arrival"
GREETED = "arrival_greeted"
WITHDRAWN = "arrivals_withdrawn"
ARRIVALS = (VIP_ARRIVAL, FREQUENT_ARRIVAL)
#: what a device's stream (the desktop staff window) is handed
DEVICE_KINDS = frozenset({VIP_ARRIVAL})
#: what the staff app's stream is handed
STAFF_APP_KINDS = frozenset({VIP_ARRIVAL, FREQUENT_ARRIVAL, GREETED, WITHDRAWN})
_IN_CHUNK = 500


@dataclass(frozen=True)
class Alert:
    """One alert as read: what the hub hands a stream."""

    event_id: int
    store_id: int
    kind: str
    customer_id: int | None
    payload: dict[str, Any]
    created_at: datetime


def raise_alert(
    session: Session,
    store_id: int,
    kind: str,
    payload: dict[str, Any],
    *,
    customer_id: int | None,
    at: datetime,
) -> AlertEvent:
    """Store an alert and wake the store's streams when the transaction commits."""
    event = AlertEvent(
        store_id=store_id, kind=kind, customer_id=customer_id, created_at=at, payload=payload
    )
    session.add(event)
    change_feed.notify(session, change_feed.ALERTS, str(store_id))
    return event


def withdraw(session: Session, customer_ids: Iterable[int], at: datetime) -> None:
    """Delete every alert about these customers (and their greetings); tell the staff app's
    lists to drop those arrivals at once (`arrivals_withdrawn`, ids only, per store)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    by_store: dict[int, list[int]] = {}
    doomed: list[int] = []
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(AlertEvent.id, AlertEvent.store_id, AlertEvent.kind).where(
                AlertEvent.customer_id.in_(ids[start : start + _IN_CHUNK])
            )
        ).all()
        for alert_id, store_id, kind in rows:
            doomed.append(alert_id)
            if kind in ARRIVALS:
                by_store.setdefault(store_id, []).append(alert_id)
    for start in range(0, len(doomed), _IN_CHUNK):
        chunk = doomed[start : start + _IN_CHUNK]
        session.execute(delete(ArrivalGreeting).where(ArrivalGreeting.alert_id.in_(chunk)))
        session.execute(delete(AlertEvent).where(AlertEvent.id.in_(chunk)))
    for store_id, arrival_ids in sorted(by_store.items()):
        arrival_ids.sort()
        for start in range(0, len(arrival_ids), _IN_CHUNK):
            chunk = arrival_ids[start : start + _IN_CHUNK]
            raise_alert(
                session, store_id, WITHDRAWN, {"arrival_ids": chunk}, customer_id=None, at=at
            )


def expire(session: Session, before: datetime) -> int:
    """Delete the alerts (face crops, greetings, withdrawals) raised before `before`; how
    many. The staff app drops older cards itself (`staff_list_hours`)."""
    old = select(AlertEvent.id).where(AlertEvent.created_at < before)
    session.execute(delete(ArrivalGreeting).where(ArrivalGreeting.alert_id.in_(old)))
    result = session.execute(delete(AlertEvent).where(AlertEvent.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def alert_ids_after(
    session: Session,
    store_ids: Iterable[int],
    after_id: int,
    limit: int,
    kinds: Iterable[str] = DEVICE_KINDS,
) -> list[tuple[int, int, str]]:
    """(id, store id, kind) of the stores' alerts of `kinds` with ids above `after_id`,
    oldest first, at most `limit`: a cheap read (no payloads) a round can repeat over its
    look-back."""
    rows = session.execute(
        select(AlertEvent.id, AlertEvent.store_id, AlertEvent.kind)
        .where(
            AlertEvent.store_id.in_(sorted(set(store_ids))),
            AlertEvent.id > after_id,
            AlertEvent.kind.in_(sorted(set(kinds))),
        )
        .order_by(AlertEvent.id)
        .limit(limit)
    ).all()
    return [(alert_id, store_id, kind) for alert_id, store_id, kind in rows]


def alerts_by_id(session: Session, alert_ids: Iterable[int]) -> list[Alert]:
    """The alerts with these ids (those still stored), oldest first."""
    wanted = sorted(set(alert_ids))
    events: list[AlertEvent] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        events += session.scalars(select(AlertEvent).where(AlertEvent.id.in_(chunk))).all()
    events.sort(key=lambda e: e.id)
    return [as_alert(e) for e in events]


def as_alert(event: AlertEvent) -> Alert:
    return Alert(
        event_id=event.id,
        store_id=event.store_id,
        kind=event.kind,
        customer_id=event.customer_id,
        payload=dict(event.payload),
        created_at=event.created_at,
    )


def vip_arrival(alert: Alert) -> VipArrival:
    """A `vip_arrival` alert as the desktop staff window's event body."""
    payload = alert.payload
    return VipArrival(
        event_id=alert.event_id,
        store_id=alert.store_id,
        customer_id=payload["customer_id"],
        vip_number=payload["vip_number"],
        name=payload["name"],
        level=payload["level"],
        at=alert.created_at,
        face_jpeg_base64=payload.get("face_jpeg_base64"),
    )


def latest_alert_id(services: Services) -> int:
    """The newest alert's id, of any store: where a stream that starts "from now" resumes
    (nothing of its store lies between its own newest alert and this one, and a hub's round
    then need not look any further back for it)."""
    with services.sessions() as session:
        return newest_alert_id(session)


def newest_alert_id(session: Session) -> int:
    return session.scalar(select(func.max(AlertEvent.id))) or 0
