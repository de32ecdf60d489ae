"""POST /v1/checkouts: bind the customer at the counter to the receipt, answer with the card.

Idempotent on (device, idempotency key): the first answer is stored with the receipt and a
retry returns it without storing anything again, also when two retries race (the unique
constraint decides and the loser reads the winner's answer).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, FaceSample, LineItem, Product, Receipt, Visit, utcnow
from cloud_api.services.context import Caller, Services
from cloud_api.services.recognizer import QueryContext, context_for, sample_rows
from cloud_api.services.vip_card import build_card, unidentified_card
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
    with services.sessions() as session:
        previous = stored_answer(session, caller, request.idempotency_key)
    if previous is not None:
        log.info("checkout_replayed", device=caller.device_id, key=request.idempotency_key)
        return previous

    demographics = services.estimate(request.face_crop)
    services.recognizer.sync()  # everything committed so far, by any process
    try:
        with services.sessions() as session, session.begin():
            answer = _record(session, services, caller, request, demographics)
    except IntegrityError:
        with services.sessions() as session:
            previous = stored_answer(session, caller, request.idempotency_key)
        if previous is None:
            raise
        log.info("checkout_race_lost", device=caller.device_id, key=request.idempotency_key)
        return previous
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
        response={},
        items=[
            LineItem(
                **item.model_dump(), store_id=caller.store_id, sold_at=receipt_data.scanned_at
            )
            for item in receipt_data.items
        ],
    )
    session.add(receipt)
    _remember_products(session, request)

    customer, status, distance = _resolve(
        session, services, caller, request.embeddings, demographics, now
    )
    session.flush()  # ids for the receipt and the customer
    if customer is not None:
        receipt.customer_id = customer.id
        for line in receipt.items:
            line.customer_id = customer.id
        customer.lifetime_spend = (customer.lifetime_spend or Decimal(0)) + receipt.total
        _count_visit(session, caller, customer, "checkout", receipt.id, receipt_data.scanned_at)
        session.flush()
        card = build_card(
            session,
            customer,
            store_id=caller.store_id,
            status=status,
            distance=distance,
            demographics=demographics,
        )
    else:
        card = unidentified_card(demographics)

    companions = [
        _companion(session, services, caller, c, receipt.id, receipt_data.scanned_at, now)
        for c in request.companions
    ]
    answer = CheckoutResponse(receipt_id=receipt.id, card=card, companions=companions)
    receipt.response = answer.model_dump(mode="json")
    return answer


def _resolve(
    session: Session,
    services: Services,
    caller: Caller,
    embeddings: list[Embedding],
    demographics: Demographics | None,
    now: Any,
) -> tuple[Customer | None, Literal["new", "returning"], float | None]:
    """Who is this: a returning customer, a new one (enrolled now), or nobody we can tell."""
    usable = [e for e in embeddings if e.quality >= services.settings.min_embedding_quality]
    if not usable:
        return None, "new", None
    gender = demographics.gender if demographics else None
    age = demographics.age_years if demographics else None
    context = context_for(caller.region_id, caller.store_id, gender, age)
    found = services.recognizer.identify(usable, context)
    customer = session.get(Customer, found.customer_id) if found is not None else None
    if customer is not None and found is not None:
        _update_demographics(customer, demographics)
        _enrol(session, services, customer, usable, _customer_context(customer, caller))
        return customer, "returning", found.distance
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
    _enrol(session, services, customer, usable, context)
    return customer, "new", None


def _customer_context(customer: Customer, caller: Caller) -> QueryContext:
    return context_for(caller.region_id, caller.store_id, customer.gender, customer.age_years)


def _enrol(
    session: Session,
    services: Services,
    customer: Customer,
    embeddings: list[Embedding],
    context: QueryContext,
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
    room = services.settings.max_samples_per_customer - have
    if room <= 0:
        return
    best = sorted(embeddings, key=lambda e: e.quality, reverse=True)[:room]
    session.add_all(sample_rows(customer.id, best, context))


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
    now: datetime,
) -> CompanionResult:
    demographics = services.estimate(companion.face_crop)
    customer, status, _ = _resolve(
        session, services, caller, companion.embeddings, demographics, now
    )
    if customer is None:
        return CompanionResult(customer_id=None, status="unidentified")
    _count_visit(session, caller, customer, "companion", receipt_id, at)
    return CompanionResult(customer_id=customer.id, status=status)


def _count_visit(
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
