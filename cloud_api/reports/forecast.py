"""Units each product will sell in the coming weeks, per store (or for the scope's stores
together), with the model's back-test error beside a naive forecast's.

Weeks are the 7-day periods ending on the report's last day. The model is damped-trend
exponential smoothing (Holt; alpha 0.4, beta 0.2, phi 0.9) over the last 12 weeks, times a
yearly seasonal index (the same weeks a year earlier against the weeks before them) where
a year of history exists. The back-test refits it `weeks` weeks earlier and forecasts the
weeks that have since happened: WAPE = sum |actual - forecast| / sum actual over the listed
products, against a naive forecast (the last week repeated) on the same weeks.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api.db.models import RollupSales
from cloud_api.reports.common import Table, Window, as_date, ratio
from cloud_api.reports.sales import describe_products
from contract import Cell

HISTORY_WEEKS = 12
YEAR_WEEKS = 52
ALPHA, BETA, PHI = 0.4, 0.2, 0.9


def holt(history: NDArray[np.float64], horizon: int) -> NDArray[np.float64]:
    """Damped-trend exponential smoothing of each row; the next `horizon` values."""
    level = history[:, 0].copy()
    trend = np.zeros_like(level)
    for t in range(1, history.shape[1]):
        previous = level
        level = ALPHA * history[:, t] + (1 - ALPHA) * (previous + PHI * trend)
        trend = BETA * (level - previous) + (1 - BETA) * PHI * trend
    steps = np.cumsum(PHI ** np.arange(1, horizon + 1))
    result: NDArray[np.float64] = np.maximum(0.0, level[:, None] + trend[:, None] * steps[None, :])
    return result


def seasonal_index(series: NDArray[np.float64], end: int, horizon: int) -> NDArray[np.float64]:
    """For forecasts after week `end` (exclusive): last year's same weeks against the four
    weeks before them; 1 where a year of history is missing or empty."""
    index = np.ones((series.shape[0], horizon))
    start = end - YEAR_WEEKS
    if start - 4 < 0:
        return index
    base = series[:, start - 4 : start].mean(axis=1)
    ahead = series[:, start : start + horizon]
    usable = base > 0
    index[usable] = ahead[usable] / base[usable, None]
    return np.clip(index, 0.25, 4.0)


def predict(series: NDArray[np.float64], end: int, horizon: int) -> NDArray[np.float64]:
    history = series[:, end - HISTORY_WEEKS : end]
    return holt(history, horizon) * seasonal_index(series, end, horizon)


def forecast(session: Session, w: Window) -> Table:
    horizon = w.param("weeks", 4, 1, 12)
    limit = w.param("limit", 10, 1, 100)
    lookback = YEAR_WEEKS + HISTORY_WEEKS
    last_day = w.filters.date_to
    origin_day = last_day + timedelta(days=1) - timedelta(weeks=lookback)
    origin = w.end - timedelta(weeks=lookback)
    s = RollupSales
    scope = [s.day >= origin_day, s.day <= last_day, w.stores(s.store_id)]
    quantity = func.sum(s.quantity)
    recent = last_day + timedelta(days=1) - timedelta(weeks=HISTORY_WEEKS)
    top = [
        sku
        for sku, _ in session.execute(
            select(s.sku, quantity)
            .where(*scope, s.day >= recent)
            .group_by(s.sku)
            .order_by(quantity.desc(), s.sku)
            .limit(limit)
        )
    ]
    names = {sku: about[0] for sku, about in describe_products(session, top).items()}
    series = np.zeros((len(top), lookback))
    position = {sku: i for i, sku in enumerate(top)}
    for sku, day, amount in session.execute(
        select(s.sku, s.day, quantity).where(s.sku.in_(top), *scope).group_by(s.sku, s.day)
    ):
        index = (as_date(day) - origin_day).days // 7
        if 0 <= index < lookback:
            series[position[sku], index] += float(amount)
    future = predict(series, lookback, horizon) if top else np.zeros((0, horizon))
    backtest = predict(series, lookback - horizon, horizon) if top else np.zeros((0, horizon))
    actual = series[:, lookback - horizon :]
    naive = np.repeat(series[:, lookback - horizon - 1 : lookback - horizon], horizon, axis=1)
    total = float(actual.sum())
    week_start = [(origin + timedelta(weeks=i)).date() for i in range(lookback + horizon)]
    rows: list[list[Cell]] = []
    for sku, i in position.items():
        for k in range(lookback - HISTORY_WEEKS, lookback):
            rows.append(
                [
                    w.filters.store_id,
                    sku,
                    names.get(sku, sku),
                    week_start[k].isoformat(),
                    "history",
                    round(float(series[i, k]), 3),
                ]
            )
        for h in range(horizon):
            rows.append(
                [
                    w.filters.store_id,
                    sku,
                    names.get(sku, sku),
                    week_start[lookback + h].isoformat(),
                    "forecast",
                    round(float(future[i, h]), 1),
                ]
            )
    summary: dict[str, Cell] = {
        "products": len(top),
        "weeks": horizon,
        "backtest_weeks": horizon,
        "backtest_wape": ratio(float(np.abs(actual - backtest).sum()), total),
        "naive_wape": ratio(float(np.abs(actual - naive).sum()), total),
        "first_forecast_week": week_start[lookback].isoformat(),
    }
    return ["store_id", "sku", "name", "week_start", "kind", "quantity"], rows, summary
