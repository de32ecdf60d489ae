"""The VIP card the cashier sees: who this is, how much they buy, what they like."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Literal

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, LineItem, Receipt, Store, Visit
from contract import (
    Demographics,
    MemberInfo,
    PossibleMember,
    Preferences,
    ProductSuggestion,
    VipCard,
    VisitSummary,
)

#: Lifetime spend at which each purchase level starts.
PURCHASE_LEVELS: tuple[tuple[Decimal, str], ...] = (
    (Decimal("2000"), "platinum"),
    (Decimal("500"), "gold"),
    (Decimal("100"), "silver"),
    (Decimal("0.01"), "bronze"),
)
LAST_VISITS = 5
TOP_PREFERENCES = 3
RECOMMENDATIONS = 3


def purchase_level(spend: Decimal) -> Literal["new", "bronze", "silver", "gold", "platinum"]:
    for floor, level in PURCHASE_LEVELS:
        if spend >= floor:
            return level  # type: ignore[return-value]
    return "new"


def member_info(customer: Customer) -> MemberInfo | None:
    if not customer.is_member:
        return None
    assert customer.vip_number and customer.consent_at
    return MemberInfo(
        vip_number=customer.vip_number,
        name=customer.name or "",
        level=customer.level or "standard",
        consent_at=customer.consent_at,
    )


def build_card(
    session: Session,
    customer: Customer,
    *,
    store_id: int,
    status: Literal["new", "returning", "possible_member", "unidentified"],
    distance: float | None,
    demographics: Demographics | None,
    currency: str | None = None,
) -> VipCard:
    """`currency`: the customer's latest receipt's, when the caller has just stored it (read
    from the database otherwise)."""
    liked = preferences(session, customer.id)
    return VipCard(
        customer_id=customer.id,
        status=status,
        visit_count=customer.visit_count,
        member=member_info(customer),
        purchase_level=purchase_level(customer.lifetime_spend),
        lifetime_spend=customer.lifetime_spend,
        preferences=liked,
        last_visits=last_visits(session, customer.id, store_id),
        recommendations=recommendations(session, customer.id, liked),
        demographics=demographics,
        match_distance=round(distance, 4) if distance is not None else None,
        currency=currency if currency is not None else spend_currency(session, customer.id),
    )


def spend_currency(session: Session, customer_id: int) -> str | None:
    """The currency the customer's spend is in: their latest receipt's (None without one)."""
    return session.scalar(
        select(Receipt.currency)
        .where(Receipt.customer_id == customer_id)
        .order_by(Receipt.id.desc())
        .limit(1)
    )


def possible_member_card(
    demographics: Demographics | None, decision_id: int, member: Customer
) -> VipCard:
    """A member's face, but not sure enough to say who: no name, no history, one question."""
    first = (member.name or "").split()
    return unidentified_card(demographics).model_copy(
        update={
            "status": "possible_member",
            "decision_id": decision_id,
            "possible_member": PossibleMember(
                decision_id=decision_id, first_name=first[0] if first else ""
            ),
        }
    )


def unidentified_card(demographics: Demographics | None) -> VipCard:
    return VipCard(
        customer_id=None,
        status="unidentified",
        visit_count=0,
        member=None,
        purchase_level="new",
        lifetime_spend=Decimal(0),
        preferences=Preferences(categories=[], brands=[]),
        last_visits=[],
        recommendations=[],
        demographics=demographics,
        match_distance=None,
    )


def preferences(session: Session, customer_id: int) -> Preferences:
    """The categories and brands the customer spent most on (ties by name), from one query:
    spend per (category, brand) pair, summed here per category and per brand."""
    spend = func.sum(LineItem.quantity * LineItem.unit_price)
    pairs = session.execute(
        select(LineItem.category, LineItem.brand, spend)
        .join(Receipt)
        .where(Receipt.customer_id == customer_id)
        .group_by(LineItem.category, LineItem.brand)
    ).all()
    by_category: dict[str, Decimal] = defaultdict(Decimal)
    by_brand: dict[str, Decimal] = defaultdict(Decimal)
    for category, brand, total in pairs:
        by_category[category] += total or 0
        if brand:
            by_brand[brand] += total or 0
    return Preferences(categories=top_spend(by_category), brands=top_spend(by_brand))


def top_spend(spend: dict[str, Decimal]) -> list[str]:
    """The names with the most spend (ties by name), at most TOP_PREFERENCES."""
    ranked = sorted(spend.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:TOP_PREFERENCES]]


def last_visits(session: Session, customer_id: int, store_id: int) -> list[VisitSummary]:
    """The customer's latest visits to this store (a device sees only its own store)."""
    rows = session.execute(
        select(Visit.at, Visit.store_id, Store.name, Receipt.total, Receipt.currency)
        .join(Store, Store.id == Visit.store_id)
        .outerjoin(Receipt, Receipt.id == Visit.receipt_id)
        .where(Visit.customer_id == customer_id, Visit.store_id == store_id)
        .order_by(Visit.at.desc(), Visit.id.desc())
        .limit(LAST_VISITS)
    ).all()
    return [
        VisitSummary(at=a, store_id=s, store_name=n, total=t, currency=c) for a, s, n, t, c in rows
    ]


def recommendations(
    session: Session, customer_id: int, liked: Preferences | None = None
) -> list[ProductSuggestion]:
    """Products bought by customers who bought what this one bought, not yet by this one.

    Falls back to the best sellers of the customer's favourite category (from `liked`, the
    customer's preferences when the caller has them already).
    """
    own_skus = select(LineItem.sku).join(Receipt).where(Receipt.customer_id == customer_id)
    similar = (
        select(Receipt.customer_id)
        .distinct()
        .join(LineItem)
        .where(
            LineItem.sku.in_(own_skus),
            Receipt.customer_id.is_not(None),
            Receipt.customer_id != customer_id,
        )
    )
    buyers = func.count(distinct(Receipt.customer_id))
    rows = session.execute(
        select(LineItem.sku, LineItem.name, LineItem.category, LineItem.brand, buyers)
        .join(Receipt)
        .where(Receipt.customer_id.in_(similar), LineItem.sku.not_in(own_skus))
        .group_by(LineItem.sku, LineItem.name, LineItem.category, LineItem.brand)
        .order_by(buyers.desc(), LineItem.sku)
        .limit(RECOMMENDATIONS)
    ).all()
    out = [
        ProductSuggestion(
            sku=sku,
            name=name,
            category=category,
            brand=brand,
            reason=f"bought by {count} customer{'s' if count != 1 else ''} with similar baskets",
        )
        for sku, name, category, brand, count in rows
    ]
    if len(out) < RECOMMENDATIONS:
        liked = liked if liked is not None else preferences(session, customer_id)
        out += _category_best_sellers(session, customer_id, liked, {s.sku for s in out})
    return out[:RECOMMENDATIONS]


def _category_best_sellers(
    session: Session, customer_id: int, liked: Preferences, exclude: set[str]
) -> list[ProductSuggestion]:
    favourite = liked.categories
    if not favourite:
        return []
    own_skus = select(LineItem.sku).join(Receipt).where(Receipt.customer_id == customer_id)
    sold = func.sum(LineItem.quantity)
    rows = session.execute(
        select(LineItem.sku, LineItem.name, LineItem.category, LineItem.brand)
        .where(LineItem.category == favourite[0], LineItem.sku.not_in(own_skus))
        .group_by(LineItem.sku, LineItem.name, LineItem.category, LineItem.brand)
        .order_by(sold.desc(), LineItem.sku)
        .limit(RECOMMENDATIONS + len(exclude))
    ).all()
    return [
        ProductSuggestion(
            sku=sku,
            name=name,
            category=category,
            brand=brand,
            reason=f"a best seller in {category}",
        )
        for sku, name, category, brand in rows
        if sku not in exclude
    ]
