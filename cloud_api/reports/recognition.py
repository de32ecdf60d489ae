"""How well the face decisions at the tills hold up against what was learnt later: per store
and week (Monday, UTC, of the receipt's time), decisions, acceptances, cashier answers, and
the false-accept and false-reject rates where ground truth is known.

Read straight from `recognition_decisions` (one row per face decision). An accepted decision
is "member", "returning" or "possible_member". Ground truth is a known customer
(`truth_customer_id`: loyalty card, payment token or cashier confirmation) or a cashier's
answer. A false accept is an accepted decision that pointed at someone other than the known
customer, or that the cashier rejected; the rate is over decisions with any ground truth. A
false reject is a decision about a known customer who had face samples before the visit
(so the face could have found them; unknown counts as no) that did not accept that
customer; the rate is over those decisions. A week partly outside the window counts only
its days inside it; a store's week with no rows at all (not even a no-face shot) has no row.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from cloud_api.db.models import RecognitionDecision, Store
from cloud_api.reports.common import Table, Window, as_date, ratio, week_start_of
from contract import Cell

ACCEPTED = ("member", "returning", "possible_member")
COLUMNS = [
    "week",
    "store_id",
    "store",
    "decisions",
    "accepted",
    "possible_members",
    "confirmations",
    "rejections",
    "with_truth",
    "false_accepts",
    "false_accept_rate",
    "truth_findable",
    "false_rejects",
    "false_reject_rate",
]
#: the counted columns: every column after the store's but the rates
_COUNTS = tuple(c for c in COLUMNS[3:] if not c.endswith("_rate"))
#: the period's figures in the summary (a period's rates are over its totals)
SUMMARY = ("decisions", "accepted", *COLUMNS[COLUMNS.index("with_truth") :])


def _conditions() -> dict[str, ColumnElement[bool]]:
    """What each count counts: one condition per decision row."""
    d = RecognitionDecision
    accepted = d.outcome.in_(ACCEPTED)
    rejected = d.cashier == "rejected"
    # a visit without a usable face, or a child's, was never for the face to decide
    decided = d.outcome.not_in(("no_face", "child"))
    truth_known = and_(decided, d.truth_customer_id.is_not(None))
    findable = and_(truth_known, d.truth_had_face.is_(True))
    # IS [NOT] DISTINCT FROM: a missing candidate is a mismatch, never an unknown
    found_truth = and_(accepted, d.candidate_id.is_not_distinct_from(d.truth_customer_id))
    return {
        "decisions": d.outcome != "no_face",
        "accepted": accepted,
        "possible_members": d.outcome == "possible_member",
        "confirmations": d.cashier == "confirmed",
        "rejections": rejected,
        "with_truth": or_(truth_known, and_(decided, d.cashier.is_not(None))),
        "false_accepts": and_(
            accepted,
            or_(and_(truth_known, d.candidate_id.is_distinct_from(d.truth_customer_id)), rejected),
        ),
        "truth_findable": findable,
        "false_rejects": and_(findable, not_(found_truth)),
    }


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _figures(counts: dict[str, int]) -> dict[str, Cell]:
    """The counts and the two rates drawn from them (None when nothing to divide by)."""
    return {
        **counts,
        "false_accept_rate": ratio(counts["false_accepts"], counts["with_truth"]),
        "false_reject_rate": ratio(counts["false_rejects"], counts["truth_findable"]),
    }


def _row(week: str, store_id: int, store: str, counts: dict[str, int]) -> list[Cell]:
    values = {"week": week, "store_id": store_id, "store": store, **_figures(counts)}
    return [values[column] for column in COLUMNS]


def recognition(session: Session, w: Window) -> Table:
    d = RecognitionDecision
    week = week_start_of(w.dialect, d.at)
    conditions = _conditions()
    query = (
        select(week, d.store_id, Store.name, *(_count(conditions[k]) for k in _COUNTS))
        .join(Store, Store.id == d.store_id)
        .where(w.in_range(d.at), w.stores(d.store_id))
        .group_by(week, d.store_id, Store.name)
        .order_by(week, Store.name, d.store_id)
    )
    rows: list[list[Cell]] = []
    totals = dict.fromkeys(_COUNTS, 0)
    for monday, store_id, name, *sums in session.execute(query):
        counts = {k: int(v or 0) for k, v in zip(_COUNTS, sums, strict=True)}
        rows.append(_row(as_date(monday).isoformat(), int(store_id), str(name), counts))
        for k in _COUNTS:
            totals[k] += counts[k]
    figures = _figures(totals)
    summary: dict[str, Cell] = {k: figures[k] for k in SUMMARY}
    return list(COLUMNS), rows, summary
