"""The staff app's arrivals: who came in, the card that helps greet them, who greeted them.

Who may: a signed-in `store_staff` or `store_manager` user, for their own store only (a user
of another role, or without a store, is refused). At head office, an in-store store's staff
use their store server, which holds that store's arrivals.

What they see is read from the store's arrival alerts (`cloud_api.services.alerts`): an
alert is deleted with its customer, when the customer withdraws their consent, and after
`staff_alert_retention_hours`; the list shows the last `staff_list_hours`. A card's details
come from the customer's row as it is now, and from this store only (visits, purchases).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Row, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    AlertEvent,
    ArrivalGreeting,
    Customer,
    LineItem,
    Receipt,
    Store,
    User,
    Visit,
    utcnow,
)
from cloud_api.db.session import transaction
from cloud_api.services import alerts
from cloud_api.services.alerts import Alert
from cloud_api.services.context import Services
from cloud_api.services.errors import Conflict, Forbidden, NotFound
from cloud_api.services.users import STORE_ROLES, user_out
from cloud_api.services.vip_card import purchase_level, top_spend
from contract import (
    ArrivalCard,
    ArrivalGreeted,
    ArrivalMember,
    ArrivalPurchase,
    ArrivalsWithdrawn,
    ArrivalVisit,
    Greeting,
    Preferences,
    StaffArrivals,
    StaffMe,
    StoreOut,
)

log = structlog.get_logger(__name__)

LAST_VISITS = 3
LAST_PURCHASES = 5
#: the most cards a list holds (a store's busiest day of member arrivals fits)
MAX_LIST = 200


def staff_store(svc: Services, user: User) -> Store:
    """The store whose arrivals `user` sees, or Forbidden."""
    if user.role not in STORE_ROLES:
        raise Forbidden(f"the staff app is for store staff; the role {user.role!r} has none")
    if user.store_id is None:
        raise Forbidden("this user is not assigned to a store")
    with svc.sessions() as session:
        store = session.get(Store, user.store_id)
        if store is None:
            raise Forbidden("this user's store no longer exists")
        session.expunge(store)
    if store.mode == "store" and svc.settings.mode != "store":
        raise Forbidden(
            "this store is in in-store mode: its arrivals are on its store server, not here"
        )
    return store


def me(user: User, store: Store) -> StaffMe:
    """`store`: the user's, as `staff_store` found it."""
    return StaffMe(
        user=user_out(user),
        store=StoreOut(id=store.id, code=store.code, name=store.name, region_id=store.region_id),
    )


def todays_arrivals(svc: Services, store_id: int) -> StaffArrivals:
    """The store's arrivals of the last `staff_list_hours`, newest first."""
    hours = svc.settings.staff_list_hours
    since = utcnow() - timedelta(hours=hours)
    with svc.sessions() as session:
        latest = alerts.newest_alert_id(session)
        events = session.scalars(
            select(AlertEvent)
            .where(
                AlertEvent.store_id == store_id,
                AlertEvent.kind.in_(alerts.ARRIVALS),
                AlertEvent.created_at >= since,
            )
            .order_by(AlertEvent.id.desc())
            .limit(MAX_LIST)
        ).all()
        found = [alerts.as_alert(e) for e in events]
        cards = _cards(session, store_id, found)
    return StaffArrivals(arrivals=cards, latest_event_id=latest, list_hours=hours)


def arrival(svc: Services, store_id: int, arrival_id: int) -> ArrivalCard:
    with svc.sessions() as session:
        return _card_of(session, store_id, arrival_id, svc.settings.staff_list_hours)


def greet(svc: Services, user: User, store_id: int, arrival_id: int) -> ArrivalCard:
    """Record that `user` greeted this arrival's customer: the first to press wins (a second
    press by the same user changes nothing; by anyone else it is a Conflict naming who)."""
    hours = svc.settings.staff_list_hours
    try:
        with transaction(svc.sessions) as session:
            event = _visible_arrival(session, store_id, arrival_id, hours)  # or 404
            now = utcnow()
            session.add(
                ArrivalGreeting(alert_id=arrival_id, user_id=user.id, by_name=user.name, at=now)
            )
            session.flush()  # the primary key decides who was first
            alerts.raise_alert(
                session,
                store_id,
                alerts.GREETED,
                {
                    "arrival_id": arrival_id,
                    "by_user_id": user.id,
                    "by_name": user.name,
                    "at": now.isoformat(),
                },
                customer_id=event.customer_id,  # deleted with the customer
                at=now,
            )
    except IntegrityError:
        pass  # greeted already: by whom is read below
    with svc.sessions() as session:
        card = _card_of(session, store_id, arrival_id, hours)
    assert card.greeted is not None
    if card.greeted.by_user_id != user.id:
        raise Conflict(
            f"{card.greeted.by_name} greeted this customer at "
            f"{card.greeted.at.strftime('%H:%M')} UTC"
        )
    log.info("arrival_greeted", store=store_id, arrival=arrival_id, user=user.id)
    return card


def render(svc: Services, store_id: int, batch: list[Alert]) -> list[tuple[int, str, str]]:
    """The staff stream's events, (event id, SSE event name, JSON data), for a batch the hub
    handed over: an arrival's card reads the database (call it in a worker thread)."""
    out: list[tuple[int, str, str]] = []
    arrivals_in = [a for a in batch if a.kind in alerts.ARRIVALS]
    cards: dict[int, ArrivalCard] = {}
    if arrivals_in:
        with svc.sessions() as session:
            cards = {c.arrival_id: c for c in _cards(session, store_id, arrivals_in)}
    for alert in batch:
        if alert.kind in alerts.ARRIVALS:
            card = cards.get(alert.event_id)
            if card is not None:  # its customer may be gone since
                out.append((alert.event_id, "arrival", card.model_dump_json()))
        elif alert.kind == alerts.GREETED:
            p = alert.payload
            event = ArrivalGreeted(
                arrival_id=p["arrival_id"],
                greeted=Greeting(by_user_id=p["by_user_id"], by_name=p["by_name"], at=p["at"]),
            )
            out.append((alert.event_id, "greeted", event.model_dump_json()))
        elif alert.kind == alerts.WITHDRAWN:
            gone = ArrivalsWithdrawn(arrival_ids=alert.payload["arrival_ids"])
            out.append((alert.event_id, "withdrawn", gone.model_dump_json()))
    return out


def _visible_arrival(session: Session, store_id: int, arrival_id: int, hours: int) -> AlertEvent:
    """The arrival alert, when it is this store's and on today's list; else NotFound."""
    event = session.get(AlertEvent, arrival_id)
    since = utcnow() - timedelta(hours=hours)
    if (
        event is None
        or event.store_id != store_id
        or event.kind not in alerts.ARRIVALS
        or event.created_at < since
    ):
        raise NotFound(f"no arrival {arrival_id} in this store today")
    return event


def _card_of(session: Session, store_id: int, arrival_id: int, hours: int) -> ArrivalCard:
    event = _visible_arrival(session, store_id, arrival_id, hours)
    cards = _cards(session, store_id, [alerts.as_alert(event)])
    if not cards:
        raise NotFound(f"no arrival {arrival_id} in this store today")
    return cards[0]


def _cards(session: Session, store_id: int, found: list[Alert]) -> list[ArrivalCard]:
    """Cards for these arrival alerts, in their order (those whose customer is gone or opted
    out left out): a fixed number of queries however many cards (a list, a stream's batch)."""
    if not found:
        return []
    customer_ids = sorted({a.customer_id for a in found if a.customer_id is not None})
    customers = {
        c.id: c
        for c in session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))
        if c.opted_out_at is None
    }
    ids = sorted(customers)
    greetings = {
        g.alert_id: g
        for g in session.scalars(
            select(ArrivalGreeting).where(ArrivalGreeting.alert_id.in_([a.event_id for a in found]))
        )
    }
    liked = _preferences(session, ids)
    visits = _last_visits(session, ids, store_id)
    purchases = _last_purchases(session, ids, store_id)
    currencies = _currencies(session, ids)
    out: list[ArrivalCard] = []
    for alert in found:
        customer = customers.get(alert.customer_id or -1)
        if customer is None:
            continue
        member = (
            ArrivalMember(
                vip_number=customer.vip_number or "",
                name=customer.name or "",
                level=customer.level or "standard",
            )
            if customer.is_member
            else None
        )
        greeting = greetings.get(alert.event_id)
        out.append(
            ArrivalCard(
                arrival_id=alert.event_id,
                kind="vip" if alert.kind == alerts.VIP_ARRIVAL else "frequent",
                at=alert.created_at,
                customer_id=customer.id,
                member=member,
                # the photo of a member only: the crop was kept under their consent
                face_jpeg_base64=alert.payload.get("face_jpeg_base64") if member else None,
                purchase_level=purchase_level(customer.lifetime_spend),
                visit_count=customer.visit_count,
                lifetime_spend=customer.lifetime_spend,
                currency=currencies.get(customer.id),
                preferences=liked.get(customer.id, Preferences(categories=[], brands=[])),
                last_visits=visits.get(customer.id, []),
                last_purchases=purchases.get(customer.id, []),
                greeted=Greeting(
                    by_user_id=greeting.user_id, by_name=greeting.by_name, at=greeting.at
                )
                if greeting is not None
                else None,
            )
        )
    return out


def _preferences(session: Session, customer_ids: list[int]) -> dict[int, Preferences]:
    """Each customer's top categories and brands by spend (as the VIP card ranks them)."""
    spend = func.sum(LineItem.quantity * LineItem.unit_price)
    by_category: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    by_brand: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for chunk in _chunks(customer_ids):
        rows = session.execute(
            select(LineItem.customer_id, LineItem.category, LineItem.brand, spend)
            .where(LineItem.customer_id.in_(chunk))
            .group_by(LineItem.customer_id, LineItem.category, LineItem.brand)
        ).all()
        for customer_id, category, brand, total in rows:
            if customer_id is None:  # not asked for (the query names its customers)
                continue
            by_category[customer_id][category] += total or 0
            if brand:
                by_brand[customer_id][brand] += total or 0
    return {
        c: Preferences(categories=top_spend(by_category[c]), brands=top_spend(by_brand[c]))
        for c in customer_ids
    }


def _latest(
    session: Session,
    customer_ids: list[int],
    columns: tuple[Any, ...],
    customer: Any,
    order: tuple[Any, ...],
    where: tuple[Any, ...],
    limit: int,
) -> dict[int, list[Row[Any]]]:
    """Each customer's newest `limit` rows of `columns` (one query per chunk of customers: a
    window function numbers each customer's rows newest first)."""
    out: dict[int, list[Row[Any]]] = defaultdict(list)
    for chunk in _chunks(customer_ids):
        numbered = (
            select(
                *columns,
                customer.label("who"),
                func.row_number().over(partition_by=customer, order_by=order).label("n"),
            )
            .where(customer.in_(chunk), *where)
            .subquery()
        )
        rows = session.execute(
            select(numbered).where(numbered.c.n <= limit).order_by(numbered.c.who, numbered.c.n)
        ).all()
        for row in rows:
            out[row.who].append(row)
    return out


def _last_visits(
    session: Session, customer_ids: list[int], store_id: int
) -> dict[int, list[ArrivalVisit]]:
    """Each customer's latest checkouts in this store (entrance sightings are arrivals, not
    visits worth a line)."""
    numbered = _latest(
        session,
        customer_ids,
        (Visit.at.label("at"), Receipt.total.label("total"), Receipt.currency.label("currency")),
        Visit.customer_id,
        (Visit.at.desc(), Visit.id.desc()),
        (Visit.store_id == store_id, Visit.kind == "checkout", Receipt.id == Visit.receipt_id),
        LAST_VISITS,
    )
    return {
        c: [ArrivalVisit(at=r.at, total=r.total, currency=r.currency) for r in rows]
        for c, rows in numbered.items()
    }


def _last_purchases(
    session: Session, customer_ids: list[int], store_id: int
) -> dict[int, list[ArrivalPurchase]]:
    numbered = _latest(
        session,
        customer_ids,
        (
            LineItem.sold_at.label("at"),
            LineItem.name.label("name"),
            LineItem.category.label("category"),
            LineItem.brand.label("brand"),
            LineItem.quantity.label("quantity"),
        ),
        LineItem.customer_id,
        (LineItem.sold_at.desc(), LineItem.id.desc()),
        (LineItem.store_id == store_id,),
        LAST_PURCHASES,
    )
    return {
        c: [
            ArrivalPurchase(
                at=r.at,
                name=r.name,
                category=r.category,
                brand=r.brand or None,
                quantity=r.quantity,
            )
            for r in rows
        ]
        for c, rows in numbered.items()
    }


def _currencies(session: Session, customer_ids: list[int]) -> dict[int, str]:
    """The currency of each customer's spend: their latest receipt's (as the VIP card's)."""
    numbered = _latest(
        session,
        customer_ids,
        (Receipt.currency.label("currency"),),
        Receipt.customer_id,
        (Receipt.id.desc(),),
        (),
        1,
    )
    return {c: rows[0].currency for c, rows in numbered.items() if rows}


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
