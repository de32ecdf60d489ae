"""Fit the decision policy's threshold curve to an open-set run (`storesight-eval openset --fit`).

For every gallery size the run measured, the score of each non-mated search's nearest
customer is known (strangers' probes, and mated probes decided with their own identity left
out), so the threshold that holds a false-accept rate f is a quantile of those scores. One
curve per kind of visit (one shot; two or more) is fitted to those quantiles over all sizes
and rates: how the threshold falls as the partition searched grows (`per_doubling`), and how
far it moves per tenfold change of f (`per_decade`), which is what carries the member target
(0.1%): no data set of a few thousand strangers can measure that directly.

Each point is the threshold that keeps the rate's upper 95% confidence bound (Wilson) within
the rate, not the bare quantile: a curve fitted to a few thousand strangers must still hold on
the next few thousand. Fit on one half of the searches and report on the other (`--half fit`
/ `--half report`): the point is a curve that holds on faces and at sizes it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.openset import SizeResult

SLOPE_RATES = (0.002, 0.005, 0.01, 0.02, 0.05)


#: One-sided 95% confidence: a fitted threshold holds its rate unless the strangers measured
#: were a 1-in-20 lucky draw.
CONFIDENCE_Z = 1.645


def wilson_upper(false_accepts: int, searches: int, z: float = CONFIDENCE_Z) -> float:
    """Upper confidence bound of a rate seen as `false_accepts` in `searches` (Wilson score)."""
    if searches <= 0:
        return 1.0
    p = false_accepts / searches
    centre = p + z * z / (2 * searches)
    spread = z * math.sqrt(p * (1 - p) / searches + z * z / (4 * searches * searches))
    return min(1.0, (centre + spread) / (1 + z * z / searches))


def threshold_at(scores: Sequence[float], fpir: float, *, confident: bool = False) -> float:
    """The largest threshold accepting at most `fpir` of these non-mated scores (strictly
    below it); with `confident`, at most so many that the rate's upper 95% bound stays within
    `fpir` (NaN when there are too few scores to show that at all)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    allowed = int(math.floor(fpir * len(ordered)))
    if confident:
        while allowed >= 0 and wilson_upper(allowed, len(ordered)) > fpir:
            allowed -= 1
        if allowed < 0:
            return float("nan")
    if allowed >= len(ordered):
        return float("inf")
    return float(ordered[allowed])


def _nonmated_scores(result: SizeResult, visit: bool) -> list[float]:
    """Scores of the nearest customer for every non-mated search: strangers' probes, and
    mated probes decided with their own identity left out (children's probes, never
    matched, count as rejected)."""
    out = []
    for o in result.outcomes:
        if o.probe.visit != visit:
            continue
        decision = o.left_out if o.probe.mated else o.decision
        if decision is None:
            continue
        nearest = decision.nearest
        out.append(float("inf") if nearest is None else nearest.score)
    return out


def _points(results: Sequence[SizeResult], *, visit: bool) -> list[tuple[int, float, float]]:
    """(customers, rate, threshold) for every size and rate the searches can vouch for."""
    points: list[tuple[int, float, float]] = []
    for result in results:
        scores = _nonmated_scores(result, visit=visit)
        for rate in SLOPE_RATES:
            threshold = threshold_at(scores, rate, confident=True)
            if math.isfinite(threshold):
                points.append((result.enrolled_customers, rate, threshold))
    return points


def fit_policy(results: Sequence[SizeResult]) -> dict[str, Any]:
    """Both curves, as DecisionPolicy fields (`points` are for reading, not for the policy).

    At every gallery size, the thresholds holding each rate in SLOPE_RATES with 95%
    confidence (as far as the number of non-mated searches can show it) are points
    (N, f, t). One least-squares fit over the points of both kinds of visit gives each kind
    its own base and per_decade, and one per_doubling for both: how the threshold must fall
    as the gallery grows is a property of the gallery, and visits alone (a few hundred
    strangers) are too few to show it apart from noise."""
    kinds = {
        "visit_curve": _points(results, visit=True),
        "single_curve": _points(results, visit=False),
    }
    rows: list[list[float]] = []
    target: list[float] = []
    for k, points in enumerate(kinds.values()):
        for n, f, t in points:
            row = [0.0] * 5  # base_visit, base_single, per_doubling, decade_visit, decade_single
            row[k] = 1.0
            row[2] = -math.log2(1 + n)
            row[3 + k] = math.log10(f / 0.01)
            rows.append(row)
            target.append(t)
    sizes = {n for points in kinds.values() for n, _, _ in points}
    if len(sizes) < 2 or any(len({f for _, f, _ in p}) < 2 for p in kinds.values()):
        raise ValueError(
            "fitting needs non-mated searches of both kinds at two or more gallery sizes and "
            "rates: use more strangers or more sizes"
        )
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(target), rcond=None)
    per_doubling = round(max(0.0, float(solution[2])), 4)
    out: dict[str, Any] = {"curve_fpir": 0.01}
    for k, (name, points) in enumerate(kinds.items()):
        out[name] = {
            "base": round(float(solution[k]), 4),
            "per_doubling": per_doubling,
            "per_decade": round(max(0.001, float(solution[3 + k])), 4),
            "points": [{"customers": n, "fpir": f, "threshold": round(t, 4)} for n, f, t in points],
        }
    return out


def policy_fields(fitted: dict[str, Any]) -> dict[str, Any]:
    """The fitted values without the points they came from."""
    return {
        key: (
            {k: v for k, v in value.items() if k != "points"} if isinstance(value, dict) else value
        )
        for key, value in fitted.items()
    }
