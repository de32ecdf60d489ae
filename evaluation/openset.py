"""1:N open-set identification through the product's own gallery and decision policy.

Terms as in NIST FRVT 1:N: a *mated* probe's identity is enrolled, a *non-mated* one's is
not. FPIR is the share of non-mated probes accepted as anyone; FNIR the share of mated probes
not accepted as their own identity; `wrong_identity` the share of mated probes accepted as
someone else; rank1 the share whose nearest customer is their own.

Protocol (fixed, so results compare):

* each enrolled identity's first 2 photos (sorted) are enrolled as that customer; its other
  photos are mated probes, alone ("single") and as visits (consecutive groups of up to 3);
* each stranger photo is a non-mated single probe; strangers with 2 or more photos also give
  visits;
* at size N, the first N distractor identities (sorted, first photo each) are enrolled as
  other customers;
* enrolment and decisions go through `cloud_api.recognition.gallery.Gallery` (the object the
  API's recogniser uses) on a real `RecognitionEngine`, all customers in one store: the
  hardest case, where the store's own partition is the whole gallery. Photos the policy
  refuses (estimated under its age limit) are not enrolled, as at the till, and are counted.

Each decision is made twice over: `member` (would show a member's card; every customer counts
as a member) and `returning` (would link the visit to an existing profile).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cloud_api.recognition import EngineSettings, RecognitionEngine, SampleMeta, age_band
from cloud_api.recognition.gallery import Candidate, Decision, Gallery, Shot, Visit
from cloud_api.recognition.policy import DecisionPolicy
from evaluation.face_cache import FaceRecord
from evaluation.openset_data import GroupLabels, Identity, half_of, utk_meta

#: A decision rule to measure instead of the product's (see evaluation.openset_compare)
Decider = Callable[[Gallery, Visit, tuple[int, ...]], Decision]

ENROL_PHOTOS = 2
VISIT_PHOTOS = 3
REGION, STORE = 1, 1
KINDS = ("member", "returning")


@dataclass(frozen=True, slots=True)
class Probe:
    identity: str  # the true identity
    photos: tuple[Path, ...]
    mated: bool
    visit: bool  # False: a single photo
    labels: dict[str, str] = field(default_factory=dict)


#: Two photos closer than this are the same face (one picture saved twice, or the same
#: sitting): different people are essentially never this close with dlib's descriptors.
DUPLICATE_DISTANCE = 0.2
#: Two UTKFace crops closer than this whose labels agree (gender, ethnicity, ages within
#: `SAME_PERSON_AGE_GAP` years) are taken for one person filed twice. UTKFace holds many
#: people several times: on the shared data, of the non-mated photos whose nearest gallery
#: photo is this close, 51% agree in those labels, where 2.5% of random UTKFace pairs do
#: (`storesight-eval openset --compare` prints both).
SAME_PERSON_DISTANCE = 0.4
SAME_PERSON_AGE_GAP = 5


@dataclass(frozen=True, slots=True)
class Protocol:
    enrolled: dict[str, tuple[Path, ...]]  # identity -> photos enrolled
    probes: list[Probe]
    distractors: list[Identity]

    def without_duplicates(
        self,
        faces: dict[Path, FaceRecord],
        reviewed: set[frozenset[Path]] | None = None,
    ) -> tuple[Protocol, int]:
        """The protocol without non-mated probes whose face also appears, under another name,
        among the enrolled or distractor photos: label noise in public data sets, not
        strangers. Three rules: the same picture (DUPLICATE_DISTANCE); UTKFace crops close
        with agreeing labels (SAME_PERSON_DISTANCE); pairs a person reviewed and judged the
        same (`reviewed`, resolved paths). Returns it and how many probes were dropped."""
        gallery = [p for ps in self.enrolled.values() for p in ps]
        gallery += [d.photos[0] for d in self.distractors]
        gallery = [p for p in gallery if faces[p].descriptor is not None]
        if not gallery:
            return self, 0
        matrix = np.stack([v for p in gallery if (v := faces[p].descriptor) is not None])
        norms = (matrix * matrix).sum(axis=1)
        in_gallery = {g.resolve() for g in gallery}
        duplicated: set[Path] = set()  # resolved paths of non-mated photos to drop
        for pair in reviewed or set():
            first, second = tuple(pair)
            if second in in_gallery:
                duplicated.add(first)
            if first in in_gallery:
                duplicated.add(second)
        for probe in self.probes:
            if probe.mated:
                continue
            for photo in probe.photos:
                v = faces[photo].descriptor
                if v is None or photo.resolve() in duplicated:
                    continue
                distances = np.sqrt(np.maximum(norms - 2 * matrix @ v + float(v @ v), 0.0))
                if float(distances.min()) < DUPLICATE_DISTANCE or any(
                    same_labels(photo, gallery[i])
                    for i in np.flatnonzero(distances < SAME_PERSON_DISTANCE)
                ):
                    duplicated.add(photo.resolve())
        kept = [  # a mated probe stays: its own identity is enrolled, a match is right
            p for p in self.probes if p.mated or not {f.resolve() for f in p.photos} & duplicated
        ]
        return Protocol(self.enrolled, kept, self.distractors), len(self.probes) - len(kept)

    def probes_of(self, half: str) -> Protocol:
        """The same gallery with only one half's probes ("fit" or "report", by identity; "all"
        keeps every probe): thresholds fitted on one half's searches are reported on the
        other's, against the same enrolled customers."""
        if half == "all":
            return self
        kept = [p for p in self.probes if half_of(p.identity) == half]
        return Protocol(self.enrolled, kept, self.distractors)

    def shuffled(self, seed: int) -> Protocol:
        """The same protocol with the distractors in a seeded random order, so that every
        gallery size holds the same mix of sources (for fitting how thresholds scale with
        size; the reported protocol keeps sorted order)."""
        order = list(self.distractors)
        random.Random(seed).shuffle(order)
        return Protocol(self.enrolled, self.probes, order)

    def photos(self) -> list[Path]:
        out = [p for ps in self.enrolled.values() for p in ps]
        out += [p for probe in self.probes for p in probe.photos]
        out += [d.photos[0] for d in self.distractors]
        return out


def build_protocol(
    enrolled: Sequence[Identity],
    strangers: Sequence[Identity],
    distractors: Sequence[Identity],
    labels: GroupLabels,
) -> Protocol:
    gallery: dict[str, tuple[Path, ...]] = {}
    probes: list[Probe] = []
    for person in enrolled:
        if len(person.photos) <= ENROL_PHOTOS:
            continue  # nothing left to probe with
        gallery[person.name] = person.photos[:ENROL_PHOTOS]
        rest = person.photos[ENROL_PHOTOS:]
        probes += [Probe(person.name, (p,), True, False) for p in rest]
        probes += [
            Probe(person.name, rest[i : i + VISIT_PHOTOS], True, True)
            for i in range(0, len(rest), VISIT_PHOTOS)
        ]
    for person in strangers:
        tags = labels.of(person)
        probes += [Probe(person.name, (p,), False, False, tags) for p in person.photos]
        if len(person.photos) >= 2:
            probes += [
                Probe(person.name, person.photos[i : i + VISIT_PHOTOS], False, True, tags)
                for i in range(0, len(person.photos), VISIT_PHOTOS)
            ]
    taken = set(gallery) | {s.name for s in strangers}
    others = [d for d in distractors if d.name not in taken]
    return Protocol(gallery, probes, others)


def same_labels(a: Path, b: Path) -> bool:
    """Two UTKFace crops whose labels agree: gender, ethnicity, ages within the gap."""
    first, second = utk_meta(a), utk_meta(b)
    if first is None or second is None:
        return False
    return first[1:] == second[1:] and abs(first[0] - second[0]) <= SAME_PERSON_AGE_GAP


# ---- running ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One probe's decision at one gallery size.

    `left_out`: for a mated probe, the decision with its own identity left out of the
    gallery, which makes it one more non-mated search (used to fit thresholds, never in the
    reported FPIR)."""

    probe: Probe
    decision: Decision
    customer: dict[str, int]  # identity -> customer id
    left_out: Decision | None = None


@dataclass
class RunResult:
    sizes: list[SizeResult]
    not_enrolled: dict[str, int]  # why some enrolled or distractor identities are not customers


@dataclass
class SizeResult:
    distractors: int  # distractor identities offered at this size
    enrolled_customers: int  # customers in the gallery (refused children are not)
    outcomes: list[Outcome]


class _Enroller:
    """Puts identities into one Gallery the way the API does: the policy may refuse a face."""

    def __init__(self, gallery: Gallery, faces: dict[Path, FaceRecord]) -> None:
        self.gallery = gallery
        self.faces = faces
        self.customer: dict[str, int] = {}
        self.refused_children = 0
        self.without_face = 0
        self._next_sample = 1

    def enrol(self, name: str, photos: Sequence[Path]) -> None:
        records = [r for p in photos if (r := self.faces[p]).descriptor is not None]
        if not records:
            self.without_face += 1
            return
        if self.gallery.policy.is_child(_mean_age(records)):
            self.refused_children += 1
            return
        customer = len(self.customer) + 1
        self.customer[name] = customer
        count = len(records)
        sample_ids = list(range(self._next_sample, self._next_sample + count))
        self._next_sample += count
        metas = [
            SampleMeta(customer, REGION, STORE, _gender(r), age_band(r.age_years)) for r in records
        ]
        vectors = np.stack([r.descriptor for r in records if r.descriptor is not None])
        self.gallery.add_samples(sample_ids, vectors, metas, [1.0] * count, [False] * count)


def run(
    protocol: Protocol,
    faces: dict[Path, FaceRecord],
    sizes: Sequence[int],
    policy: DecisionPolicy,
    *,
    engine_settings: EngineSettings | None = None,
    progress: Callable[[str], None] | None = None,
    decider: Decider | None = None,
) -> RunResult:
    """Decide every probe at every gallery size (one gallery, grown size by size).

    `decider` replaces `Gallery.decide` (a reference rule to compare with); by default the
    product's decision is measured."""
    engine = RecognitionEngine(engine_settings or EngineSettings(), None)
    gallery = Gallery(engine, policy)
    enroller = _Enroller(gallery, faces)
    for name, photos in protocol.enrolled.items():
        enroller.enrol(name, photos)
    results: list[SizeResult] = []
    offered = 0
    try:
        for size in sorted(set(sizes)):
            size = min(size, len(protocol.distractors))
            for other in protocol.distractors[offered:size]:
                enroller.enrol(other.name, other.photos[:1])
            offered = max(offered, size)
            if engine.rebuild_due():
                engine.rebuild()
            outcomes = []
            for probe in tqdm(protocol.probes, desc=f"{size} distractors", unit="probe"):
                decision = _decide(gallery, probe, faces, decider=decider)
                own = enroller.customer.get(probe.identity) if probe.mated else None
                left_out = (
                    None
                    if own is None
                    else _decide(gallery, probe, faces, exclude=own, decider=decider)
                )
                outcomes.append(Outcome(probe, decision, enroller.customer, left_out))
            results.append(SizeResult(size, gallery.customers(), outcomes))
            if progress is not None:
                progress(f"{size} distractors decided")
    finally:
        engine.close()
    refused = {"child": enroller.refused_children, "no_face": enroller.without_face}
    return RunResult(results, refused)


def _decide(
    gallery: Gallery,
    probe: Probe,
    faces: dict[Path, FaceRecord],
    exclude: int | None = None,
    decider: Decider | None = None,
) -> Decision:
    records = [r for p in probe.photos if (r := faces[p]).descriptor is not None]
    if not records:
        return Decision()
    shots = [Shot(r.descriptor, 1.0) for r in records if r.descriptor is not None]
    visit = Visit(shots, REGION, STORE, age_years=_mean_age(records))
    excluded = () if exclude is None else (exclude,)
    if decider is not None:
        return decider(gallery, visit, excluded)
    return gallery.decide(visit, exclude=excluded)


def _mean_age(records: Sequence[FaceRecord]) -> float | None:
    ages = [r.age_years for r in records if r.age_years is not None]
    return float(np.mean(ages)) if ages else None


def _gender(record: FaceRecord) -> Any:
    return record.gender if record.gender in ("female", "male") else "unknown"


# ---- figures ---------------------------------------------------------------------------------


def _accepted(decision: Decision, kind: str) -> Candidate | None:
    candidate: Candidate | None = getattr(decision, kind)
    return candidate


def figures(outcomes: Sequence[Outcome], *, visit: bool) -> dict[str, Any]:
    """FPIR, FNIR, wrong identity and rank 1 over single probes or visits."""
    chosen = [o for o in outcomes if o.probe.visit == visit]
    mated = [o for o in chosen if o.probe.mated]
    nonmated = [o for o in chosen if not o.probe.mated]
    out: dict[str, Any] = {"mated": len(mated), "nonmated": len(nonmated)}
    for kind in KINDS:
        right = wrong = 0
        for o in mated:
            found = _accepted(o.decision, kind)
            if found is None:
                continue
            if found.customer_id == o.customer.get(o.probe.identity):
                right += 1
            else:
                wrong += 1
        false = sum(_accepted(o.decision, kind) is not None for o in nonmated)
        out[kind] = {
            "fpir": _share(false, len(nonmated)),
            "fnir": _share(len(mated) - right, len(mated)),
            "wrong_identity": _share(wrong, len(mated)),
            "false_accepts": false,
        }
    out["rank1"] = _share(
        sum(
            o.decision.nearest is not None
            and o.decision.nearest.customer_id == o.customer.get(o.probe.identity)
            for o in mated
        ),
        len(mated),
    )
    return out


def by_group(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Non-mated probes (single and visit) per group label: how many, and FPIR per decision."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if not o.probe.mated:
            for key, value in o.probe.labels.items():
                groups[f"{key}={value}"].append(o)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(groups):
        members = groups[name]
        row: dict[str, Any] = {"nonmated": len(members)}
        for kind in KINDS:
            false = sum(_accepted(o.decision, kind) is not None for o in members)
            row[kind] = {"fpir": _share(false, len(members)), "false_accepts": false}
        out[name] = row
    return out


def summary(run: RunResult, policy: DecisionPolicy) -> dict[str, Any]:
    results = run.sizes
    return {
        "protocol": {
            "enrol_photos": ENROL_PHOTOS,
            "visit_photos": VISIT_PHOTOS,
            "not_enrolled": run.not_enrolled,
        },
        "policy": policy.model_dump(),
        "sizes": [
            {
                "distractors": r.distractors,
                "customers": r.enrolled_customers,
                "single": figures(r.outcomes, visit=False),
                "visit": figures(r.outcomes, visit=True),
                "by_group": by_group(r.outcomes),
            }
            for r in results
        ],
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 5) if whole else None
