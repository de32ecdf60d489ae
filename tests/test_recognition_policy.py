"""The open-set decision policy and the gallery that applies it, on synthetic descriptors.

Random unit vectors in 128 dimensions are about 1.41 apart, far beyond every threshold, so a
probe placed at a chosen distance from one customer has that customer as its only near
neighbour: each test controls exactly the evidence a decision sees.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cloud_api.recognition import EngineSettings, RecognitionEngine, SampleMeta
from cloud_api.recognition.gallery import Decision, Gallery, Shot, Visit, fuse
from cloud_api.recognition.policy import DecisionPolicy, ThresholdCurve

DIM = 128
STORE, REGION = 1, 1
#: A curve whose numbers are easy to reason about: 0.3 for a gallery of one, 0.02 less per
#: doubling, 0.1 less per tenfold stricter target.
CURVE = ThresholdCurve(base=0.3, per_doubling=0.02, per_decade=0.1)


def _policy(**changes: object) -> DecisionPolicy:
    return DecisionPolicy().with_overrides(
        {"visit_curve": CURVE.model_dump(), "single_curve": CURVE.model_dump(), **changes}
    )


def _unit(rng: np.random.Generator) -> NDArray[np.float32]:
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _at(
    centre: NDArray[np.float32], distance: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """A point exactly `distance` from `centre`, in a random direction."""
    direction = rng.normal(size=DIM)
    direction /= np.linalg.norm(direction)
    return (centre + distance * direction).astype(np.float32)


class _Shop:
    """A gallery with customers enrolled one sample each, all in one store."""

    def __init__(self, policy: DecisionPolicy) -> None:
        self.gallery = Gallery(RecognitionEngine(EngineSettings(), None), policy)
        self._next = 1

    def enrol(
        self,
        vectors: list[NDArray[np.float32]],
        *,
        customer: int | None = None,
        store: int = STORE,
        region: int = REGION,
        qualities: list[float] | None = None,
    ) -> int:
        customer = customer if customer is not None else self._next
        self._next = max(self._next, customer) + 1
        count = len(vectors)
        ids = list(range(customer * 1000, customer * 1000 + count))
        metas = [SampleMeta(customer, region, store, "unknown", -1)] * count
        self.gallery.add_samples(
            ids, np.stack(vectors), metas, qualities or [1.0] * count, [False] * count
        )
        return customer

    def crowd(self, count: int, rng: np.random.Generator) -> None:
        """`count` other customers, each far from everyone."""
        vectors = np.stack([_unit(rng) for _ in range(count)])
        first = self._next
        self._next += count
        metas = [SampleMeta(first + i, REGION, STORE, "unknown", -1) for i in range(count)]
        ids = list(range(10_000_000 + first, 10_000_000 + first + count))
        self.gallery.add_samples(ids, vectors, metas, [1.0] * count, [False] * count)

    def decide(
        self,
        shots: list[NDArray[np.float32]],
        *,
        age: float | None = 35.0,
        exclude: tuple[int, ...] = (),
        store: int = STORE,
    ) -> Decision:
        visit = Visit([Shot(s, 1.0) for s in shots], REGION, store, age_years=age)
        return self.gallery.decide(visit, exclude=exclude)


def test_shipped_thresholds_shrink_as_the_partition_grows() -> None:
    policy = DecisionPolicy()
    for shots in (1, 2):
        for fpir in (policy.returning_fpir, policy.member_fpir):
            sizes = [0, 100, 1_000, 15_000, 100_000, 1_000_000]
            thresholds = [policy.threshold(n, fpir, shots=shots) for n in sizes]
            assert all(a > b for a, b in zip(thresholds, thresholds[1:], strict=False)), (
                shots,
                fpir,
                thresholds,
            )
        # the member card needs stronger evidence than linking a returning profile
        assert policy.threshold(5_000, policy.member_fpir, shots=shots) < policy.threshold(
            5_000, policy.returning_fpir, shots=shots
        )


def test_the_same_evidence_is_accepted_in_a_small_store_and_refused_in_a_large_one() -> None:
    rng = np.random.default_rng(7)
    policy = _policy(margin_weight=0.0)  # the distance alone: only the size changes
    shop = _Shop(policy)
    alex = _unit(rng)
    alex_id = shop.enrol([alex])
    probe = _at(alex, 0.2, rng)  # 0.3 - 0.02 * log2(1 + N) falls below 0.2 near N = 31
    small = shop.decide([probe, probe])
    assert small.returning is not None and small.returning.customer_id == alex_id
    assert small.returning.searched == 1
    shop.crowd(200, rng)  # strangers to this probe, none anywhere near it
    large = shop.decide([probe, probe])
    assert large.returning is None
    assert large.nearest is not None and large.nearest.customer_id == alex_id
    assert large.nearest.searched == 201


def test_member_card_needs_more_than_linking_and_more_than_one_frame() -> None:
    rng = np.random.default_rng(8)
    shop = _Shop(_policy(margin_weight=0.0))
    alex = _unit(rng)
    shop.enrol([alex])
    # one customer: returning threshold 0.28, member threshold 0.18
    sure = shop.decide([_at(alex, 0.10, rng)] * 2)
    assert sure.member is not None and sure.returning is not None
    unsure = shop.decide([_at(alex, 0.24, rng)] * 2)
    assert unsure.member is None and unsure.possible_member is not None
    one_frame = shop.decide([_at(alex, 0.10, rng)])
    assert one_frame.returning is not None and one_frame.member is None


def test_a_close_second_customer_makes_the_best_one_uncertain() -> None:
    rng = np.random.default_rng(9)
    shop = _Shop(_policy(margin_weight=1.0, margin_cap=0.7))
    alex = _unit(rng)
    shop.enrol([alex])
    probe = _at(alex, 0.3, rng)
    alone = shop.decide([probe, probe])  # score 0.3 - (0.7 - 0.3) = -0.1
    assert alone.returning is not None
    twin = _at(probe, 0.32, rng)  # another customer about as close to the probe
    shop.enrol([twin])
    crowded = shop.decide([probe, probe])  # score 0.3 - 0.02 = 0.28: above 0.268
    assert crowded.returning is None


def test_children_are_neither_matched_nor_enrolled() -> None:
    rng = np.random.default_rng(10)
    shop = _Shop(_policy())
    kid = _unit(rng)
    shop.enrol([kid])  # (were a child ever enrolled, the policy still would not match them)
    decision = shop.decide([kid, kid], age=9.0)
    assert decision.child and decision.returning is None and decision.nearest is None
    assert DecisionPolicy().is_child(15.9) and not DecisionPolicy().is_child(16.0)
    assert not DecisionPolicy().is_child(None)  # no estimate: not assumed a child


def test_a_rejected_customer_is_not_proposed_again() -> None:
    rng = np.random.default_rng(11)
    shop = _Shop(_policy())
    alex = _unit(rng)
    alex_id = shop.enrol([alex])
    probe = _at(alex, 0.1, rng)
    found = shop.decide([probe, probe]).returning
    assert found is not None and found.customer_id == alex_id
    assert shop.decide([probe, probe], exclude=(alex_id,)).returning is None


def test_templates_outvote_an_odd_sample() -> None:
    """A customer's decision rests on the weighted mean of their samples, not on their nearest
    sample: a probe near one stray sample but far from the rest is not that customer."""
    rng = np.random.default_rng(12)
    shop = _Shop(_policy(margin_weight=0.0))
    alex = _unit(rng)
    good = [_at(alex, 0.05, rng) for _ in range(5)]
    stray = _unit(rng)  # a mislabelled sample: someone else's face filed under Alex
    alex_id = shop.enrol([*good, stray], qualities=[1.0] * 5 + [0.2])
    near_stray = _at(stray, 0.05, rng)
    assert shop.decide([near_stray, near_stray]).returning is None
    found = shop.decide([_at(alex, 0.05, rng)] * 2).returning
    assert found is not None and found.customer_id == alex_id


def test_widening_to_the_region_splits_the_false_accept_budget() -> None:
    rng = np.random.default_rng(13)
    policy = _policy(margin_weight=0.0)
    shop = _Shop(policy)
    alex = _unit(rng)
    shop.enrol([alex], store=2)  # enrolled in another store of the region
    shop.crowd(3, rng)  # the query's own store has a few customers
    probe = _at(alex, 0.24, rng)
    decision = shop.decide([probe, probe], store=STORE)
    # searched: the store (3 customers), then the region (4): two levels, half the budget each
    assert decision.nearest is not None and decision.nearest.level == "region"
    half = policy.threshold(4, policy.returning_fpir / 2, shots=2)
    whole = policy.threshold(4, policy.returning_fpir, shots=2)
    assert half < 0.24 < whole
    assert decision.returning is None


def test_visit_fusion_is_the_quality_weighted_mean() -> None:
    a = np.zeros(DIM, dtype=np.float32)
    b = np.ones(DIM, dtype=np.float32)
    fused = fuse([Shot(a, 0.25), Shot(b, 0.75)])
    assert np.allclose(fused, 0.75)
    with pytest.raises(ValueError, match="at least one shot"):
        fuse([])


def test_policy_refuses_a_member_target_looser_than_the_returning_one() -> None:
    with pytest.raises(ValueError, match="member_fpir must not exceed returning_fpir"):
        DecisionPolicy(member_fpir=0.05, returning_fpir=0.01)
    with pytest.raises(ValueError, match="unknown decision policy fields: typo"):
        DecisionPolicy().with_overrides({"typo": 1})
