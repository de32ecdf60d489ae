"""`storesight-eval openset --compare`: what each idea of the decision policy buys.

On the same protocol, gallery and probes, at the largest size, four rules side by side:

* **before**: the decision the product made before the open-set policy (issue 12): each shot
  matched to the nearest stored sample closer than 0.443 (`RecognitionEngine.identify`, the
  very same search), then a vote; every match showed the card; no age limit;
* **templates**: customers' templates and fused visits, the age limit, still one threshold
  (0.443, no margin, one frame may show a member card);
* **curves**: that, with thresholds fitted on the fit half (size-dependent, two targets, a
  curve for single shots), no margin test;
* **shipped**: the configured policy (the curves fitted with the margin test).

It also prints how often close non-mated UTKFace pairs agree in their labels against random
pairs: the evidence behind treating such pairs as one person filed twice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloud_api.recognition.gallery import Candidate, Decision, Gallery, Visit
from cloud_api.recognition.policy import DecisionPolicy, ThresholdCurve
from evaluation.face_cache import FaceRecord
from evaluation.openset import (
    SAME_PERSON_DISTANCE,
    Protocol,
    figures,
    run,
    same_labels,
)
from evaluation.openset_data import utk_meta
from evaluation.openset_fit import fit_policy, policy_fields

BEFORE_THRESHOLD = 0.443  # the old RecognitionSettings.identify_threshold


def vote_of_nearest_samples(gallery: Gallery, visit: Visit, exclude: tuple[int, ...]) -> Decision:
    """The rule before issue 12: per shot, the nearest sample below 0.443; most votes win."""
    matches = []
    for shot in visit.shots:
        match = gallery.engine.identify(
            np.asarray(shot.vector, dtype=np.float32),
            region_id=visit.region_id,
            store_id=visit.store_id,
            gender="unknown",
            age_band=-1,
            threshold=BEFORE_THRESHOLD,
        )
        if match is not None and match.customer_id not in exclude:
            matches.append(match)
    if not matches:
        return Decision()
    votes = Counter(m.customer_id for m in matches)
    best = min(matches, key=lambda m: (-votes[m.customer_id], m.distance))
    found = Candidate(best.customer_id, best.distance, best.distance, best.level, 0)
    return Decision(member=found, returning=found, nearest=found)


def compare(
    protocol: Protocol,
    fit_protocol: Protocol,
    faces: dict[Path, FaceRecord],
    sizes: Sequence[int],
    policy: DecisionPolicy,
) -> list[dict[str, Any]]:
    """One row per rule at the largest size: FPIR (single, visit, member visit), FNIR visit."""
    flat = ThresholdCurve(base=BEFORE_THRESHOLD, per_doubling=0.0, per_decade=0.001)
    templates = policy.with_overrides(
        {
            "visit_curve": flat.model_dump(),
            "single_curve": flat.model_dump(),
            "margin_weight": 0.0,
            "member_min_shots": 1,
        }
    )
    no_margin = policy.with_overrides({"margin_weight": 0.0})
    fitted = policy_fields(fit_policy(run(fit_protocol.shuffled(0), faces, sizes, no_margin).sizes))
    rules = [
        ("before: nearest sample per shot at 0.443, vote", None, "before"),
        ("templates + fused visits + age limit, still 0.443", templates, None),
        (
            "+ fitted size curves, two targets, one-shot curve",
            no_margin.with_overrides(fitted),
            None,
        ),
        ("+ margin test (shipped)", policy, None),
    ]
    rows = []
    for name, rule_policy, kind in rules:
        if kind == "before":
            result = run(
                protocol,
                faces,
                sizes,
                policy.with_overrides({"min_age_years": 0.0}),
                decider=vote_of_nearest_samples,
            )
        else:
            assert rule_policy is not None
            result = run(protocol, faces, sizes, rule_policy)
        largest = result.sizes[-1]
        single = figures(largest.outcomes, visit=False)
        visit = figures(largest.outcomes, visit=True)
        rows.append(
            {
                "policy": name,
                "distractors": largest.distractors,
                "customers": largest.enrolled_customers,
                "fpir_returning_single": single["returning"]["fpir"],
                "fpir_returning_visit": visit["returning"]["fpir"],
                "fpir_member_visit": visit["member"]["fpir"],
                "fnir_returning_visit": visit["returning"]["fnir"],
            }
        )
    return rows


def label_agreement(
    protocol: Protocol, faces: dict[Path, FaceRecord], seed: int = 0
) -> dict[str, Any]:
    """Among non-mated UTKFace photos with a UTKFace gallery photo within
    SAME_PERSON_DISTANCE, the share whose labels agree (gender, ethnicity, age within
    SAME_PERSON_AGE_GAP); and the same share over random gallery pairs."""
    gallery = [d.photos[0] for d in protocol.distractors]
    gallery += [p for ps in protocol.enrolled.values() for p in ps]
    gallery = [p for p in gallery if faces[p].descriptor is not None and utk_meta(p) is not None]
    if len(gallery) < 2:
        return {"close_pairs": 0}
    matrix = np.stack([v for p in gallery if (v := faces[p].descriptor) is not None])
    norms = (matrix * matrix).sum(axis=1)
    close = agree = 0
    probes = {p for probe in protocol.probes if not probe.mated for p in probe.photos}
    for photo in sorted(probes):
        v = faces[photo].descriptor
        if v is None or utk_meta(photo) is None:
            continue
        distances = np.sqrt(np.maximum(norms - 2 * matrix @ v + float(v @ v), 0.0))
        near = int(np.argmin(distances))
        if distances[near] < SAME_PERSON_DISTANCE:
            close += 1
            agree += same_labels(photo, gallery[near])
    rng = random.Random(seed)
    pairs = [(rng.choice(gallery), rng.choice(gallery)) for _ in range(5000)]
    random_agree = sum(same_labels(a, b) for a, b in pairs if a != b) / len(pairs)
    return {
        "close_pairs": close,
        "close_pairs_agreeing": round(agree / close, 3) if close else None,
        "random_pairs_agreeing": round(random_agree, 3),
    }
