"""Fit the decision policy's threshold curve to an open-set run (`storesight-eval openset --fit`).

For every gallery size the run measured, the score of each non-mated probe's nearest customer
is known, so the threshold that holds a false-accept rate f is a quantile of those scores
(the stricter of single photos and visits). Two things are fitted from them:

* how the threshold holding the returning target falls with the number of customers searched:
  ``t = base - per_doubling * log2(1 + N)``, least squares over the sizes;
* how far the threshold moves per tenfold change of f (`per_decade`), the slope of t against
  log10 f between 0.5% and 5%, averaged over sizes; this is what carries the member target
  (0.1%), which no data set of a few thousand strangers can measure directly.

Fit on one part of the data and report on another (`--half fit` / `--half report`): the point
is a curve that holds at gallery sizes it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.openset import SizeResult

SLOPE_RATES = (0.002, 0.005, 0.01, 0.02)


def threshold_at(scores: Sequence[float], fpir: float) -> float:
    """The largest threshold accepting at most `fpir` of these non-mated scores (strictly below)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    allowed = int(math.floor(fpir * len(ordered)))
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


def fit_curve(results: Sequence[SizeResult], target: float, *, visit: bool) -> dict[str, Any]:
    """One ThresholdCurve (base, per_doubling, per_decade) and the points it was fitted to.

    per_decade comes from single photos (the many non-mated probes) for both curves: a few
    hundred visits cannot show a tail."""
    points = []
    slopes = []
    for result in results:
        scores = _nonmated_scores(result, visit=visit)
        at_target = threshold_at(scores, target)
        if math.isfinite(at_target) and target * len(scores) >= 1:
            points.append((result.enrolled_customers, at_target))
        singles = _nonmated_scores(result, visit=False)
        rates = [f for f in SLOPE_RATES if f * len(singles) >= 2]
        if len(rates) >= 2:
            ts = [threshold_at(singles, f) for f in rates]
            slopes.append(float(np.polyfit(np.log10(rates), ts, 1)[0]))
    if len(points) < 2:
        raise ValueError("fitting needs at least two gallery sizes with enough strangers")
    x = np.log2(1 + np.array([n for n, _ in points], dtype=np.float64))
    y = np.array([t for _, t in points])
    slope, intercept = np.polyfit(x, y, 1)
    return {
        "base": round(float(intercept), 4),
        "per_doubling": round(max(0.0, float(-slope)), 4),
        "per_decade": round(float(np.mean(slopes)), 4) if slopes else 0.06,
        "points": [{"customers": n, "threshold": round(t, 4)} for n, t in points],
    }


def fit_policy(results: Sequence[SizeResult], target: float) -> dict[str, Any]:
    """Both curves, as DecisionPolicy fields (`points` are for reading, not for the policy)."""
    return {
        "curve_fpir": target,
        "visit_curve": fit_curve(results, target, visit=True),
        "single_curve": fit_curve(results, target, visit=False),
    }


def policy_fields(fitted: dict[str, Any]) -> dict[str, Any]:
    """The fitted values without the points they came from."""
    return {
        key: (
            {k: v for k, v in value.items() if k != "points"} if isinstance(value, dict) else value
        )
        for key, value in fitted.items()
    }
