"""Customer look-up (the calling device's store), membership and deletion (its region)."""

from __future__ import annotations

from decimal import Decimal

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from cloud_api import change_feed
from cloud_api.db.models import (
    Customer,
    CustomerDeletion,
    FaceSample,
    PaymentToken,
    Receipt,
    RecognitionDecision,
    Sighting,
    Store,
    Visit,
    utcnow,
)
from cloud_api.db.models import (
    LineItem as LineItemRow,
)
from cloud_api.reports import rollups
from cloud_api.services import alerts
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import Conflict, Forbidden, NotFound
from cloud_api.services.vip_card import member_info, unidentified_card
from contract import (
    CheckoutResponse,
    CustomerHistory,
    CustomerOut,
    LineItem,
    MembershipRequest,
    ReceiptOut,
)

log = structlog.get_logger(__name__)


def visible_customer(session: Session, caller: Caller, customer_id: int) -> Customer:
    """The customer, if they were ever seen in the caller's store (their first store, or a
    visit there).

    NotFound otherwise, with the same detail whether the customer does not exist or belongs
    to other stores only: a device only ever sees its own store's data, and must not learn
    which ids exist elsewhere by trying them.
    """
    customer = session.get(Customer, customer_id)
    seen_here = customer is not None and (
        customer.first_store_id == caller.store_id
        or session.scalar(
            select(
                exists().where(Visit.customer_id == customer_id, Visit.store_id == caller.store_id)
            )
        )
    )
    if customer is None or not seen_here:
        raise NotFound(f"customer {customer_id} not found in this store")
    return customer


def changeable_customer(session: Session, caller: Caller, customer_id: int) -> Customer:
    """The customer, if the caller may change their membership or delete them.

    Policy: a device may change or delete a customer it can see (`visible_customer`) only
    when its store is in the customer's home region, the region of their first store
    (`Customer.first_store_id`). A member shops across their region's stores (recognition
    widens from the store to the region, too) and may join or ask to be forgotten at any of
    them; a till elsewhere that matched them, or a key stolen in another region, can read what
    its own store saw but never rename or erase another region's member. (The home store
    alone would be stricter but would refuse a customer first seen in a neighbouring store
    who signs up here.) Head office has no user path to these endpoints today; the admin CLI
    acts with the database's own rights.
    """
    customer = visible_customer(session, caller, customer_id)
    home_region = session.scalar(select(Store.region_id).where(Store.id == customer.first_store_id))
    if home_region != caller.region_id:
        raise Forbidden(
            f"customer {customer_id} belongs to another region: their membership is changed, "
            "and they are deleted, in their home region's stores or by head office"
        )
    return customer


def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        customer_id=customer.id,
        status="member" if customer.is_member else "anonymous",
        member=member_info(customer),
        first_seen_at=customer.created_at,
        last_seen_at=customer.last_seen_at,
        visit_count=customer.visit_count,
        lifetime_spend=customer.lifetime_spend or Decimal(0),
        gender=customer.gender if customer.gender in ("female", "male") else None,
        age_years=customer.age_years,
    )


def get_customer(services: Services, caller: Caller, customer_id: int) -> CustomerOut:
    with services.sessions() as session:
        return customer_out(visible_customer(session, caller, customer_id))


def history(services: Services, caller: Caller, customer_id: int) -> CustomerHistory:
    with services.sessions() as session:
        visible_customer(session, caller, customer_id)
        receipts = session.scalars(
            select(Receipt)
            .where(Receipt.customer_id == customer_id, Receipt.store_id == caller.store_id)
            .order_by(Receipt.scanned_at.desc(), Receipt.id.desc())
        ).all()
        return CustomerHistory(
            customer_id=customer_id,
            receipts=[
                ReceiptOut(
                    receipt_id=r.id,
                    number=r.number,
                    store_id=r.store_id,
                    scanned_at=r.scanned_at,
                    currency=r.currency,
                    total=r.total,
                    items=[LineItem.model_validate(i, from_attributes=True) for i in r.items],
                )
                for r in receipts
            ],
        )


def bind_membership(
    services: Services, caller: Caller, customer_id: int, request: MembershipRequest
) -> CustomerOut:
    with services.sessions() as session, session.begin():
        customer = changeable_customer(session, caller, customer_id)
        taken = session.scalar(
            select(Customer.id).where(
                Customer.vip_number == request.vip_number, Customer.id != customer_id
            )
        )
        if taken is not None:
            raise Conflict(f"VIP number {request.vip_number} belongs to another customer")
        customer.vip_number = request.vip_number
        customer.name = request.name
        customer.level = request.level
        customer.consent_at = utcnow()
        customer.opted_out_at = None  # a fresh consent
        session.flush()
        out = customer_out(customer)
    log.info("membership_bound", customer=customer_id, store=caller.store_id)
    return out


def withdraw_membership(services: Services, caller: Caller, customer_id: int) -> CustomerOut:
    """The customer withdrew their consent: no membership (name, VIP number, level go), their
    arrival alerts and face crops are deleted and leave every staff app at once, and they are
    never announced to staff again (not even as a frequent customer) until they consent anew.
    Their faces stay for recognition at the till, as any customer's (`DELETE` removes those)."""
    with services.sessions() as session, session.begin():
        customer = changeable_customer(session, caller, customer_id)
        now = utcnow()
        customer.vip_number = None
        customer.name = None
        customer.level = None
        customer.consent_at = None
        customer.opted_out_at = now
        alerts.withdraw(session, [customer_id], now)
        session.flush()
        out = customer_out(customer)
    log.info("membership_withdrawn", customer=customer_id, store=caller.store_id)
    return out


def delete_customer(services: Services, caller: Caller, customer_id: int) -> None:
    """Really delete: samples, visits and personal fields go; receipts stay, unlinked."""
    with services.sessions() as session, session.begin():
        changeable_customer(session, caller, customer_id)
        purge(session, [customer_id])
    services.recognizer.forget(customer_id)
    log.info("customer_deleted", customer=customer_id, store=caller.store_id)


def purge(session: Session, customer_ids: list[int]) -> None:
    """Delete customers and everything that identifies them, leaving a tombstone per id.

    Explicit statements rather than relying on ON DELETE, so the outcome is the same on every
    backend and whether or not foreign keys are enforced.
    """
    if not customer_ids:
        return
    rollups.customers_changed(session, customer_ids)  # their days' report rollups redone
    # The answer stored for idempotent replays names the member: replace it with one that
    # names nobody, for every receipt the customer was bound to.
    for receipt in session.scalars(select(Receipt).where(Receipt.customer_id.in_(customer_ids))):
        receipt.response = CheckoutResponse(
            receipt_id=receipt.id, card=unidentified_card(None), companions=[]
        ).model_dump(mode="json")
    _scrub_companion_answers(session, customer_ids)
    session.flush()
    session.execute(
        update(Receipt).where(Receipt.customer_id.in_(customer_ids)).values(customer_id=None)
    )
    session.execute(
        update(LineItemRow)
        .where(LineItemRow.customer_id.in_(customer_ids))
        .values(customer_id=None)
    )
    session.execute(
        update(Sighting).where(Sighting.customer_id.in_(customer_ids)).values(customer_id=None)
    )
    _unlink_decisions(session, customer_ids)
    session.execute(delete(PaymentToken).where(PaymentToken.customer_id.in_(customer_ids)))
    session.execute(delete(Visit).where(Visit.customer_id.in_(customer_ids)))
    alerts.withdraw(session, customer_ids, utcnow())  # gone from every staff app at once
    session.execute(delete(FaceSample).where(FaceSample.customer_id.in_(customer_ids)))
    session.execute(delete(Customer).where(Customer.id.in_(customer_ids)))
    session.add_all(CustomerDeletion(customer_id=i) for i in customer_ids)
    change_feed.notify(session, change_feed.DELETIONS)  # every process forgets them sooner


def _scrub_companion_answers(session: Session, customer_ids: list[int]) -> None:
    """Receipts where a deleted customer stood by as a companion: their stored answers keep
    the payer's card but the companion becomes one nobody knows."""
    gone = set(customer_ids)
    receipt_ids = select(Visit.receipt_id).where(
        Visit.customer_id.in_(customer_ids), Visit.kind == "companion"
    )
    for receipt in session.scalars(select(Receipt).where(Receipt.id.in_(receipt_ids))):
        answer = dict(receipt.response or {})
        companions = answer.get("companions") or []
        if not any(c.get("customer_id") in gone for c in companions):
            continue
        answer["companions"] = [
            {"customer_id": None, "status": "unidentified"} if c.get("customer_id") in gone else c
            for c in companions
        ]
        receipt.response = answer


def _unlink_decisions(session: Session, customer_ids: list[int]) -> None:
    """Recognition decisions keep their outcome (the quality report's counts) but no longer
    name the deleted customers, nor hold a visit's shots that pointed at them."""
    decisions = RecognitionDecision
    session.execute(
        update(decisions)
        .where(decisions.candidate_id.in_(customer_ids))
        .values(candidate_id=None, visit_descriptors=None, visit_qualities=None)
    )
    for column in (decisions.customer_id, decisions.truth_customer_id):
        session.execute(update(decisions).where(column.in_(customer_ids)).values({column: None}))
