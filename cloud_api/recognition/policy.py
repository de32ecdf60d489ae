"""The open-set decision policy: when a visit's face is "someone we know", and how sure.

A stranger compared with N customers is accepted as one of them more often the larger N is
(about with the square root of N on real faces), so one fixed distance threshold that is safe
for a small store lets strangers through once the store, its region or the whole chain is
searched. The policy therefore decides from

* a **score**: the distance `d1` from the visit's fused descriptor to the nearest customer's
  template, penalised when the second-nearest customer is nearly as close (a margin test):
  ``score = d1 - margin_weight * (min(d2, margin_cap) - d1)``;
* a **threshold that depends on the size of what was searched and on the false-accept rate
  wanted**: ``threshold(N, f) = base - per_doubling * log2(1 + N) + per_decade * log10(f /
  curve_fpir)``. `base` and `per_doubling` say how the threshold holding `curve_fpir` falls as
  the partition grows; `per_decade` how far it must move to cut false accepts tenfold. All
  three come from `storesight-eval openset --fit` on faces the product was not tuned on, and
  ship here as defaults;
* **two targets**: the member card (a name and a history on the cashier's screen) at
  `member_fpir`, linking a visit to a returning anonymous profile at `returning_fpir`.
  Between the two the till shows "possible member" and asks;
* a **budget per level**: a search widening from the store to its region and to everyone
  gives a stranger one chance per level, so each level searched gets an equal share of the
  target;
* **visits, not frames**: a visit of one shot is held to its own, stricter curve, and never
  shows a member's card (`member_min_shots`);
* **no children**: a face estimated under `min_age_years` is neither matched nor enrolled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ThresholdCurve(BaseModel):
    """threshold(N, f) = base - per_doubling * log2(1 + N) + per_decade * log10(f / curve_fpir)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: float = Field(gt=-2.0, lt=2.0, description="the threshold for a gallery of one")
    per_doubling: float = Field(
        ge=0.0, lt=0.5, description="how much it falls each time the partition doubles"
    )
    per_decade: float = Field(
        gt=0.0, lt=1.0, description="how much it falls to cut false accepts tenfold"
    )


class DecisionPolicy(BaseModel):
    """How open-set decisions are made; see the module docstring. Strict and bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    returning_fpir: float = Field(
        0.01,
        gt=0.0,
        lt=0.5,
        description="share of strangers that may be linked to some existing profile",
    )
    member_fpir: float = Field(
        0.001,
        gt=0.0,
        lt=0.5,
        description="share of strangers that may be shown some member's card (name, history)",
    )
    member_min_shots: int = Field(
        2,
        ge=1,
        le=16,
        description="the member card needs a visit of at least this many shots: one frame "
        "never puts a name on the screen",
    )
    min_age_years: float = Field(
        16.0,
        ge=0.0,
        le=30.0,
        description="faces estimated younger are neither matched nor enrolled",
    )
    # Fitted by `storesight-eval openset --half fit --sizes 0,1000,2000,4000,6000 --fit FILE`
    # on the shared data's "fit" half of searches (see README, "Recognition you can trust").
    visit_curve: ThresholdCurve = Field(
        ThresholdCurve(base=0.2862, per_doubling=0.0022, per_decade=0.1254),
        description="thresholds for visits of two or more shots",
    )
    single_curve: ThresholdCurve = Field(
        ThresholdCurve(base=0.2878, per_doubling=0.0022, per_decade=0.2686),
        description="thresholds for a visit of one shot: one frame is weaker evidence",
    )
    curve_fpir: float = Field(
        0.01, gt=0.0, lt=0.5, description="the false-accept rate the curves' bases hold"
    )
    margin_weight: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        description="how much a close second-best customer counts against the best (0: no "
        "margin test)",
    )
    margin_neighbours: int = Field(
        1,
        ge=1,
        le=32,
        description="the margin compares the nearest customer with the mean distance of this "
        "many next-nearest ones (1: the second-best only; more: the density around the face)",
    )
    margin_cap: float = Field(
        0.7,
        gt=0.0,
        lt=2.0,
        description="a second-best customer further than this counts as this far (a sparse "
        "partition must not make weak matches look strong)",
    )
    search_radius: float = Field(
        0.75,
        gt=0.0,
        lt=2.0,
        description="samples further than this from the visit are not considered at all",
    )
    neighbours: int = Field(
        64, ge=2, le=4096, description="nearest samples looked at per level of the search"
    )
    verified_weight: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="weight of a verified sample (loyalty scan, cashier confirmation) in a "
        "customer's template, against 1 for a sample the face decided",
    )

    @model_validator(mode="after")
    def _targets(self) -> DecisionPolicy:
        if self.member_fpir > self.returning_fpir:
            raise ValueError(
                "member_fpir must not exceed returning_fpir: the member card needs the stronger "
                f"evidence (got member_fpir={self.member_fpir}, "
                f"returning_fpir={self.returning_fpir})"
            )
        return self

    def threshold(self, customers: int, fpir: float, *, shots: int = 2) -> float:
        """The score below which a visit of `shots` is accepted among `customers`, at `fpir`."""
        if customers < 0:
            raise ValueError(f"customers must be >= 0, got {customers}")
        if not 0.0 < fpir < 1.0:
            raise ValueError(f"fpir must be in (0, 1), got {fpir}")
        if shots < 1:
            raise ValueError(f"a visit has at least one shot, got {shots}")
        curve = self.single_curve if shots == 1 else self.visit_curve
        return (
            curve.base
            - curve.per_doubling * math.log2(1 + customers)
            + curve.per_decade * math.log10(fpir / self.curve_fpir)
        )

    def score(self, nearest: float, others: Sequence[float]) -> float:
        """The margin-penalised distance of the nearest customer (lower: more certain).

        `others`: the distances of the next-nearest customers, nearest first."""
        near = list(others[: self.margin_neighbours])
        near += [self.margin_cap] * (self.margin_neighbours - len(near))
        runner_up = min(sum(near) / len(near), self.margin_cap)
        return nearest - self.margin_weight * max(0.0, runner_up - nearest)

    def is_child(self, age_years: float | None) -> bool:
        return age_years is not None and age_years < self.min_age_years

    def with_overrides(self, fields: dict[str, Any]) -> DecisionPolicy:
        """This policy with some fields replaced (a fitted curve, say), validated again."""
        unknown = sorted(set(fields) - set(DecisionPolicy.model_fields))
        if unknown:
            raise ValueError(f"unknown decision policy fields: {', '.join(unknown)}")
        return DecisionPolicy.model_validate({**self.model_dump(), **fields})
