"""Head-office reports: one function per report, each a table (see `contract.Report`).

`run_report(sessions, name, filters)` checks the filters, runs the report and times it.
Who may see which stores is decided before (`cloud_api.reports.access`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.reports import forecast, loyalty, recognition, rollups, sales, traffic
from cloud_api.reports.common import Table, Window, window
from cloud_api.services.errors import NotFound
from contract import Report, ReportFilters, ReportInfo, ReportParam

log = structlog.get_logger(__name__)

Builder = Callable[[Session, Window], Table]

_DAYS = ReportParam(name="days", description="days within which a buyer returns", default=30)
_LIMIT = ReportParam(name="limit", description="how many products", default=50)
_SKU = ReportParam(name="sku", description="the product (SKU)", required=True)
_WEEKS = ReportParam(name="weeks", description="weeks to forecast", default=4)
_TOP = ReportParam(name="limit", description="how many products (the best sellers)", default=10)

_REPORTS: dict[str, tuple[str, str, list[ReportParam], Builder]] = {
    "traffic": (
        "Visitors, transactions and conversion",
        "Per day: visitors at the entrance, transactions, distinct buyers, and conversion "
        "(transactions / visitors). Staff are not counted.",
        [],
        traffic.traffic,
    ),
    "heatmap": (
        "Hourly heat map",
        "Visitors and transactions by weekday (0 = Monday) and hour (UTC).",
        [],
        traffic.heatmap,
    ),
    "customers": (
        "New and returning customers",
        "Per day: customers buying for the first time in scope, returning customers, and "
        "purchases nobody was recognised at.",
        [],
        loyalty.customers,
    ),
    "frequency": (
        "Visit frequency",
        "Identified customers by how many purchases they made in the period.",
        [],
        loyalty.frequency,
    ),
    "retention": (
        "Retention of first-time buyers",
        "First-time buyers by week of their first purchase, and the share who bought again "
        "within the given number of days.",
        [_DAYS],
        loyalty.retention,
    ),
    "vip": (
        "VIP activity",
        "Members who bought in the period: visits, spend and last visit.",
        [],
        loyalty.vip,
    ),
    "demographics": (
        "Age and gender of visitors and buyers",
        "Visitors (entrance) and buyers by estimated age band and gender.",
        [],
        traffic.demographics,
    ),
    "categories": (
        "Sales by category",
        "Revenue, units and transactions per category.",
        [],
        sales.categories,
    ),
    "products": (
        "Sales by product",
        "The best-selling products by revenue.",
        [_LIMIT],
        sales.products,
    ),
    "basket": (
        "Average basket",
        "Per day: transactions, revenue, average basket value and items per basket.",
        [],
        sales.basket,
    ),
    "portrait": (
        "Product portrait",
        "Who buys a product: gender, age band and purchase frequency of its buyers.",
        [_SKU],
        sales.portrait,
    ),
    "preferences": (
        "Customer preferences",
        "Each gender and age segment's spend by category.",
        [],
        sales.preferences,
    ),
    "forecast": (
        "Sales forecast",
        "Units per product for the coming weeks, with the model's back-test error.",
        [_WEEKS, _TOP],
        forecast.forecast,
    ),
    "recognition": (
        "Recognition quality",
        "Per store and week: face decisions (no-face shots left out), acceptances and cashier "
        "answers. False-accept rate: accepted faces that pointed at someone other than the "
        "known customer (loyalty card, payment or cashier) or that the cashier rejected, over "
        "face decisions with any ground truth; false-reject rate: known customers who had face "
        "samples but were not accepted as themselves, over those decisions (children and "
        "visits without a usable face are never for the face to decide).",
        [],
        recognition.recognition,
    ),
}

REPORTS: dict[str, ReportInfo] = {
    name: ReportInfo(name=name, title=title, description=description, params=params)
    for name, (title, description, params, _) in _REPORTS.items()
}


def run_report(sessions: sessionmaker[Session], name: str, filters: ReportFilters) -> Report:
    entry = _REPORTS.get(name)
    if entry is None:
        raise NotFound(f"no report named {name!r}; reports: {', '.join(_REPORTS)}")
    title, _, _, build = entry
    started = time.perf_counter()
    rollups.ensure_fresh(sessions)
    with sessions() as session:
        columns, rows, summary = build(session, window(session, filters))
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info(
        "report_run",
        report=name,
        rows=len(rows),
        ms=round(elapsed_ms, 1),
        store=filters.store_id,
        region=filters.region_id,
    )
    return Report(
        report=name,
        title=title,
        filters=filters,
        columns=columns,
        rows=rows,
        summary=summary,
        generated_ms=round(elapsed_ms, 1),
    )
