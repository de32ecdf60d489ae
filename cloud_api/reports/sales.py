"""What sells and to whom: categories, products, the average basket, a product's buyer
portrait and each customer segment's preferences. Revenue is quantity x unit price of the
line items (staff purchases are sales too; staff are left out of the buyer figures)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import (
    Customer,
    LineItem,
    Product,
    RollupBaskets,
    RollupCategories,
    RollupSales,
    RollupSegmentSales,
)
from cloud_api.reports.common import (
    REPORT_AGE_BANDS,
    UNKNOWN,
    Table,
    Window,
    age_band,
    day_text,
    money,
    not_staff,
    ratio,
)
from cloud_api.reports.loyalty import FREQUENCY_BUCKETS
from cloud_api.services.errors import NotFound, Unprocessable
from contract import Cell


def _lines(w: Window) -> list[ColumnElement[bool]]:
    return [w.in_range(LineItem.sold_at), w.stores(LineItem.store_id)]


def describe_products(session: Session, skus: list[str]) -> dict[str, tuple[str, str, str]]:
    """Name, category and brand of each SKU: the catalogue, else its line items."""
    catalogue = {
        sku: (name, category, brand)
        for sku, name, category, brand in session.execute(
            select(Product.sku, Product.name, Product.category, Product.brand).where(
                Product.sku.in_(skus)
            )
        )
    }
    missing = [sku for sku in skus if sku not in catalogue]
    if missing:  # sold but never catalogued
        for sku, name, category, brand in session.execute(
            select(
                LineItem.sku,
                func.max(LineItem.name),
                func.max(LineItem.category),
                func.max(LineItem.brand),
            )
            .where(LineItem.sku.in_(missing))
            .group_by(LineItem.sku)
        ):
            catalogue[sku] = (name, category, brand)
    return catalogue


def categories(session: Session, w: Window) -> Table:
    c = RollupCategories
    query = (
        select(c.category, func.sum(c.revenue), func.sum(c.quantity), func.sum(c.receipts))
        .where(w.on_days(c.day), w.stores(c.store_id))
        .group_by(c.category)
        .order_by(func.sum(c.revenue).desc(), c.category)
    )
    found = [(k, money(r), float(q or 0), int(n or 0)) for k, r, q, n in session.execute(query)]
    total = sum(r for _, r, _, _ in found)
    rows: list[list[Cell]] = [[k, r, round(q, 3), n, ratio(r, total)] for k, r, q, n in found]
    summary: dict[str, Cell] = {
        "revenue": round(total, 2),
        "categories": len(rows),
        "top_category": rows[0][0] if rows else None,
    }
    return ["category", "revenue", "quantity", "transactions", "share"], rows, summary


def products(session: Session, w: Window) -> Table:
    limit = w.param("limit", 50, 1, 1000)
    s = RollupSales
    revenue = func.sum(s.revenue)
    top = session.execute(
        select(s.sku, revenue, func.sum(s.quantity), func.sum(s.receipts))
        .where(w.on_days(s.day), w.stores(s.store_id))
        .group_by(s.sku)
        .order_by(revenue.desc(), s.sku)
        .limit(limit)
    ).all()
    catalogue = describe_products(session, [sku for sku, _, _, _ in top])
    rows: list[list[Cell]] = []
    for sku, amount, quantity, receipts in top:
        name, category, brand = catalogue.get(sku, (sku, "", ""))
        rows.append(
            [
                sku,
                name,
                category,
                brand,
                money(amount),
                round(float(quantity or 0), 3),
                int(receipts or 0),
            ]
        )
    total = session.scalar(
        select(func.sum(RollupBaskets.revenue)).where(
            w.on_days(RollupBaskets.day), w.stores(RollupBaskets.store_id)
        )
    )
    summary: dict[str, Cell] = {
        "revenue": money(total),
        "products_listed": len(rows),
        "listed_share_of_revenue": ratio(sum(float(r[4] or 0) for r in rows), float(total or 0)),
    }
    columns = ["sku", "name", "category", "brand", "revenue", "quantity", "transactions"]
    return columns, rows, summary


def basket(session: Session, w: Window) -> Table:
    b = RollupBaskets
    found = {
        day_text(d): (int(n or 0), money(r), float(i or 0))
        for d, n, r, i in session.execute(
            select(b.day, func.sum(b.transactions), func.sum(b.revenue), func.sum(b.items))
            .where(w.on_days(b.day), w.stores(b.store_id))
            .group_by(b.day)
        )
    }
    rows: list[list[Cell]] = []
    for d in w.days:
        count, revenue, items = found.get(d.isoformat(), (0, 0.0, 0.0))
        rows.append(
            [d.isoformat(), count, revenue, ratio(revenue, count, 2), ratio(items, count, 2)]
        )
    transactions = sum(c for c, _, _ in found.values())
    revenue_total = sum(r for _, r, _ in found.values())
    items_total = sum(i for _, _, i in found.values())
    summary: dict[str, Cell] = {
        "transactions": transactions,
        "revenue": round(revenue_total, 2),
        "average_basket": ratio(revenue_total, transactions, 2),
        "items_per_basket": ratio(items_total, transactions, 2),
    }
    columns = ["date", "transactions", "revenue", "average_basket", "items_per_basket"]
    return columns, rows, summary


def portrait(session: Session, w: Window) -> Table:
    """Who buys one product: the gender, age band and shopping frequency (checkout visits on
    record, any product) of the identified customers who bought it in the window."""
    sku = str(w.filters.params.get("sku", "")).strip()
    if not sku:
        raise Unprocessable("sku: the product portrait needs a product (sku=...)")
    known = session.scalar(select(LineItem.id).where(LineItem.sku == sku).limit(1))
    if known is None and session.scalar(select(Product.id).where(Product.sku == sku)) is None:
        raise NotFound(f"no product with sku {sku!r}")
    buyers = (
        select(
            LineItem.customer_id.label("customer_id"),
            func.sum(LineItem.quantity * LineItem.unit_price).label("revenue"),
        )
        .where(
            LineItem.sku == sku,
            *_lines(w),
            LineItem.customer_id.is_not(None),
            not_staff(LineItem.customer_id),
        )
        .group_by(LineItem.customer_id)
        .subquery("buyers")
    )
    people = session.execute(
        select(
            buyers.c.revenue,
            Customer.gender,
            age_band(Customer.age_years),
            Customer.age_years,
            Customer.visit_count,
        ).join(Customer, Customer.id == buyers.c.customer_id)
    ).all()
    segments: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for revenue, gender, band, _, count in people:
        bucket = next(
            (label for label, low, high in FREQUENCY_BUCKETS if low <= int(count or 1) <= high),
            "10+",
        )
        for dimension, value in (
            ("gender", gender or UNKNOWN),
            ("age_band", str(band)),
            ("frequency", bucket),
        ):
            segments[(dimension, value)][0] += 1
            segments[(dimension, value)][1] += float(revenue or 0)
    order = {
        "gender": ["female", "male", UNKNOWN],
        "age_band": [label for label, _, _ in REPORT_AGE_BANDS] + [UNKNOWN],
        "frequency": [label for label, _, _ in FREQUENCY_BUCKETS],
    }
    total = len(people)
    rows: list[list[Cell]] = []
    for dimension, values in order.items():
        for value in values:
            if (dimension, value) in segments:
                count, revenue = segments[(dimension, value)]
                rows.append([dimension, value, int(count), ratio(count, total), round(revenue, 2)])
    ages = [float(a) for _, _, _, a, _ in people if a is not None]
    females = sum(1 for _, g, _, _, _ in people if g == "female")
    genders = sum(1 for _, g, _, _, _ in people if g in ("female", "male"))
    summary: dict[str, Cell] = {
        "sku": sku,
        "buyers": total,
        "average_age": round(sum(ages) / len(ages), 1) if ages else None,
        "female_share": ratio(females, genders),
    }
    return ["dimension", "value", "buyers", "share", "revenue"], rows, summary


def preferences(session: Session, w: Window) -> Table:
    """Each segment's (gender x age band) revenue by category, as a share of the segment."""
    s = RollupSegmentSales
    query = (
        select(s.gender, s.age_band, s.category, func.sum(s.revenue))
        .where(w.on_days(s.day), w.stores(s.store_id))
        .group_by(s.gender, s.age_band, s.category)
    )
    spend: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for g, b, category, revenue in session.execute(query):
        spend[(str(g), str(b))][str(category)] = money(revenue)
    order = [label for label, _, _ in REPORT_AGE_BANDS] + [UNKNOWN]
    rows: list[list[Cell]] = []
    top: dict[str, Cell] = {}
    for g in ("female", "male", UNKNOWN):
        for b in order:
            categories_spend = spend.get((g, b))
            if not categories_spend:
                continue
            segment_total = sum(categories_spend.values())
            ranked = sorted(categories_spend.items(), key=lambda kv: (-kv[1], kv[0]))
            top[f"{g} {b}"] = ranked[0][0]
            for category, amount in ranked:
                rows.append([g, b, category, amount, ratio(amount, segment_total)])
    summary: dict[str, Cell] = {"segments": len(top), **{f"top: {k}": v for k, v in top.items()}}
    return ["gender", "age_band", "category", "revenue", "share_of_segment"], rows, summary
