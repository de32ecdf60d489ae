"""POST /v1/checkouts: bind the customer at the counter to the receipt, answer with the card.

Idempotent on (device, idempotency key): the first answer is stored with the receipt and a
retry returns it without storing anything again, also when two retries race (the unique
constraint decides and the loser reads the winner's answer).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api import change_feed
from cloud_api.db.models import (
    Customer,
    FaceSample,
    LineItem,
    Product,
    Receipt,
    RecognitionDecision,
    Visit,
    utcnow,
)
from cloud_api.services.context import Caller, Services
from cloud_api.services.identity import (
    FaceVerdict,
    ground_truth,
    judge_face,
    learn_payment_token,
    pack_visit,
    recently_rejected,
)
from cloud_api.services.recognizer import QueryContext, context_for, sample_rows
from cloud_api.services.vip_card import build_card, possible_member_card, unidentified_card
from contract import (
    CheckoutRequest,
    CheckoutResponse,
    Companion,
    CompanionResult,
    Demographics,
    Embedding,
)

log = structlog.get_logger(__name__)


def stored_answer(session: Session, caller: Caller, key: str) -> CheckoutResponse | None:
    receipt = session.scalar(
        select(Receipt).where(Receipt.device_id == caller.device_id, Receipt.idempotency_key == key)
    )
    return None if receipt is None else CheckoutResponse.model_validate(receipt.response)


def checkout(services: Services, caller: Caller, request: CheckoutRequest) -> CheckoutResponse:
    """A replay (the same device and key again) is found by the receipt's unique constraint
    when the receipt is inserted, not by a read before every checkout: its transaction is
    rolled back, so nothing it did is kept, and the first answer is returned."""
    demographics = services.estimate(request.face_crop)
    services.recognizer.catch_up()  # everything other processes committed and announced
    try:
        with services.sessions() as session, session.begin():
            answer = _record(session, services, caller, request, demographics)
        enrolled = change_feed.SAMPLES in change_feed.notified(session)
    except IntegrityError:
        with services.sessions() as session:
            previous = stored_answer(session, caller, request.idempotency_key)
        if previous is None:
            raise
        log.info("checkout_replayed", device=caller.device_id, key=request.idempotency_key)
        return previous
    if enrolled:
        services.recognizer.sync()  # this checkout's new faces are searchable from now on
    log.info(
        "checkout",
        device=caller.device_id,
        receipt=answer.receipt_id,
        customer=answer.card.customer_id,
        status=answer.card.status,
        companions=len(answer.companions),
    )
    return answer


def _record(
    session: Session,
    services: Services,
    caller: Caller,
    request: CheckoutRequest,
    demographics: Demographics | None,
) -> CheckoutResponse:
    now = utcnow()
    receipt_data = request.receipt
    receipt = Receipt(
        store_id=caller.store_id,
        device_id=caller.device_id,
        idempotency_key=request.idempotency_key,
        number=receipt_data.number,
        currency=receipt_data.currency,
        total=receipt_data.total,
        scanned_at=receipt_data.scanned_at,
        loyalty_id=receipt_data.loyalty_id,
        payment_token=receipt_data.payment_token,
        response={},
        items=[
            LineItem(**item.model_dump(), store_id=caller.store_id, sold_at=receipt_data.scanned_at)
            for item in receipt_data.items
        ],
    )
    _remember_products(session, request)

    truth, source = ground_truth(session, receipt_data)
    had_face = truth is not None and services.recognizer.knows(truth.id)
    rejected = recently_rejected(session, caller.device_id, now)
    verdict = judge_face(
        session, services, caller, request.embeddings, demographics, exclude=rejected
    )
    customer, status = _who(session, services, caller, verdict, truth, demographics)
    if truth is not None and source == "loyalty":
        learn_payment_token(session, receipt_data.payment_token, truth)
    # Added once the customer is known, so the receipt and its lines are inserted with the
    # customer's id rather than inserted and then updated (link_receipt sets the same ids).
    session.add(receipt)
    if customer is not None:
        _set_customer(receipt, customer)
    session.flush()  # ids for the receipt and the customer
    decision = _decision_row(caller, receipt, verdict, customer, truth, source, had_face)
    session.add(decision)
    session.flush()
    if customer is not None:
        link_receipt(session, caller, receipt, customer)
        card = build_card(
            session,
            customer,
            store_id=caller.store_id,
            status=status,
            distance=verdict.distance() if status == "returning" else None,
            demographics=demographics,
            currency=receipt.currency,  # the customer's latest receipt is this one
        )
    elif status == "possible_member":
        assert verdict.candidate is not None
        card = possible_member_card(demographics, decision.id, verdict.candidate)
    else:
        card = unidentified_card(demographics)
    card = card.model_copy(update={"decision_id": decision.id})

    companions = [
        _companion(session, services, caller, c, receipt.id, receipt_data.scanned_at)
        for c in request.companions
    ]
    answer = CheckoutResponse(receipt_id=receipt.id, card=card, companions=companions)
    receipt.response = answer.model_dump(mode="json")
    return answer


def _who(
    session: Session,
    services: Services,
    caller: Caller,
    verdict: FaceVerdict,
    truth: Customer | None,
    demographics: Demographics | None,
) -> tuple[Customer | None, Literal["new", "returning", "possible_member", "unidentified"]]:
    """The customer this visit belongs to, and the card's status.

    Ground truth wins and makes the visit's face samples verified. Without it the face
    decides: a member or an anonymous profile it is sure enough of; a possible member is
    held (no customer) until the cashier answers; otherwise a new anonymous customer, unless
    no face was usable or it was a child's."""
    if truth is not None:
        if verdict.enrollable:
            _update_demographics(truth, demographics)
            enrol(session, services, truth, verdict.usable, _here(caller, truth), verified=True)
        return truth, "returning"
    if verdict.outcome in ("member", "returning") and verdict.candidate is not None:
        customer = verdict.candidate
        _update_demographics(customer, demographics)
        enrol(session, services, customer, verdict.usable, _here(caller, customer))
        return customer, "returning"
    if verdict.outcome == "possible_member":
        return None, "possible_member"
    if verdict.outcome == "new" and verdict.context is not None:
        customer = new_customer(
            session, services, caller, verdict.usable, verdict.context, demographics
        )
        return customer, "new"
    return None, "unidentified"


def new_customer(
    session: Session,
    services: Services,
    caller: Caller,
    shots: list[Embedding],
    context: QueryContext,
    demographics: Demographics | None,
) -> Customer:
    """A new anonymous customer of the caller's store, enrolled with `shots`."""
    now = utcnow()
    customer = Customer(
        region_id=caller.region_id,
        first_store_id=caller.store_id,
        visit_count=0,
        lifetime_spend=Decimal(0),
        created_at=now,
        last_seen_at=now,
    )
    _update_demographics(customer, demographics)
    session.add(customer)
    session.flush()
    if shots:  # no samples yet: nothing to count
        _add_samples(session, services, customer, shots, context, have=0)
    return customer


def _decision_row(
    caller: Caller,
    receipt: Receipt,
    verdict: FaceVerdict,
    customer: Customer | None,
    truth: Customer | None,
    source: str | None,
    had_face: bool,
) -> RecognitionDecision:
    pending = verdict.outcome == "possible_member" and truth is None
    descriptors, qualities = pack_visit(verdict.usable) if pending else (None, None)
    return RecognitionDecision(
        store_id=caller.store_id,
        device_id=caller.device_id,
        receipt_id=receipt.id,
        at=receipt.scanned_at,
        outcome=verdict.outcome,
        candidate_id=verdict.candidate.id if verdict.candidate is not None else None,
        customer_id=customer.id if customer is not None else None,
        distance=verdict.distance(),
        level=verdict.level(),
        searched=verdict.searched(),
        truth_customer_id=truth.id if truth is not None else None,
        truth_source=source,
        truth_had_face=had_face if truth is not None else None,
        visit_descriptors=descriptors,
        visit_qualities=qualities,
    )


#: the largest lifetime spend the column holds (NUMERIC(14, 2)); a customer at it stays at it
MAX_LIFETIME_SPEND = Decimal("999999999999.99")


def link_receipt(session: Session, caller: Caller, receipt: Receipt, customer: Customer) -> None:
    """Bind a receipt to its customer: history, spend and a counted visit."""
    _set_customer(receipt, customer)
    spend = (customer.lifetime_spend or Decimal(0)) + receipt.total
    customer.lifetime_spend = min(spend, MAX_LIFETIME_SPEND)  # saturates: never a column overflow
    count_visit(session, caller, customer, "checkout", receipt.id, receipt.scanned_at)
    session.flush()


def _set_customer(receipt: Receipt, customer: Customer) -> None:
    receipt.customer_id = customer.id
    for line in receipt.items:
        line.customer_id = customer.id


def _here(caller: Caller, customer: Customer) -> QueryContext:
    """Where a known customer's new samples are filed: this store, their own estimates."""
    return context_for(caller.region_id, caller.store_id, customer.gender, customer.age_years)


def enrol(
    session: Session,
    services: Services,
    customer: Customer,
    embeddings: list[Embedding],
    context: QueryContext,
    *,
    verified: bool = False,
) -> None:
    """Keep up to max_samples_per_customer descriptors, the best-quality ones of this visit."""
    have = (
        session.scalar(
            select(func.count())
            .select_from(FaceSample)
            .where(FaceSample.customer_id == customer.id)
        )
        or 0
    )
    _add_samples(session, services, customer, embeddings, context, have=have, verified=verified)


def _add_samples(
    session: Session,
    services: Services,
    customer: Customer,
    embeddings: list[Embedding],
    context: QueryContext,
    *,
    have: int,
    verified: bool = False,
) -> None:
    """The best of `embeddings` as samples of a customer who has `have` already."""
    room = services.settings.max_samples_per_customer - have
    if room <= 0:
        return
    best = sorted(embeddings, key=lambda e: e.quality, reverse=True)[:room]
    session.add_all(sample_rows(customer.id, best, context, verified=verified))
    change_feed.notify(session, change_feed.SAMPLES)  # other processes read them sooner


def _update_demographics(customer: Customer, demographics: Demographics | None) -> None:
    if demographics is None:
        return
    if customer.age_years is None:
        customer.age_years = demographics.age_years
    else:  # a running estimate, so one odd photo does not move it far
        customer.age_years = round(0.8 * customer.age_years + 0.2 * demographics.age_years, 1)
    if customer.gender is None or demographics.gender_confidence >= 0.8:
        customer.gender = demographics.gender


def _companion(
    session: Session,
    services: Services,
    caller: Caller,
    companion: Companion,
    receipt_id: int,
    at: datetime,
) -> CompanionResult:
    """Someone with the customer: linked only when the face is sure enough on its own (a
    possible member is not asked about, so stays unidentified)."""
    demographics = services.estimate(companion.face_crop)
    verdict = judge_face(session, services, caller, companion.embeddings, demographics)
    customer, status = _who(session, services, caller, verdict, None, demographics)
    if customer is None or status not in ("new", "returning"):
        return CompanionResult(customer_id=None, status="unidentified")
    count_visit(session, caller, customer, "companion", receipt_id, at)
    return CompanionResult(
        customer_id=customer.id, status="new" if status == "new" else "returning"
    )


def count_visit(
    session: Session, caller: Caller, customer: Customer, kind: str, receipt_id: int, at: datetime
) -> None:
    customer.visit_count += 1
    customer.last_seen_at = utcnow()
    session.add(
        Visit(
            customer_id=customer.id,
            store_id=caller.store_id,
            device_id=caller.device_id,
            kind=kind,
            receipt_id=receipt_id,
            at=at,
        )
    )


def _remember_products(session: Session, request: CheckoutRequest) -> None:
    """Add SKUs the catalogue has not seen (the POS is the source of product names)."""
    skus = {i.sku: i for i in request.receipt.items}
    known = set(session.scalars(select(Product.sku).where(Product.sku.in_(list(skus)))).all())
    for sku, item in skus.items():
        if sku in known:
            continue
        try:
            with session.begin_nested():  # another till may add the same new SKU right now
                session.add(
                    Product(
                        sku=sku,
                        name=item.name,
                        category=item.category,
                        brand=item.brand,
                        price=item.unit_price,
                        active=True,
                    )
                )
        except IntegrityError:
            log.debug("product_added_concurrently", sku=sku)
