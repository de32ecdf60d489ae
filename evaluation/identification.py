"""Open-set identification: enrol some photos of some people, probe with the rest.

People with fewer than `min_photos` photos are left out. A seeded share of the others are
strangers: never enrolled, all their photos are probes, and any match for them is a false
accept. Everyone else has `enrol` photos enrolled and the rest used as probes. A probe is
answered with the enrolled person whose nearest enrolled descriptor is closest (rank 1), and
accepted when that distance is below the threshold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from evaluation.face_encoding import Descriptor

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_gallery(root: Path, *, min_photos: int) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if len(photos) >= min_photos:
            people[folder.name] = photos
    if not people:
        raise ValueError(f"{root} has no person folder with {min_photos} or more photos")
    return people


@dataclass(frozen=True)
class Split:
    enrolled: dict[str, list[Path]]
    probes: list[tuple[str, Path]]  # (true identity, photo)
    strangers: set[str]


def split_gallery(
    people: dict[str, list[Path]], *, enrol: int, stranger_share: float, seed: int
) -> Split:
    if enrol < 1:
        raise ValueError(f"enrol must be at least 1 photo, got {enrol}")
    if not 0 <= stranger_share < 1:
        raise ValueError(f"stranger share must be in [0, 1), got {stranger_share}")
    names = sorted(people)
    rng = random.Random(seed)
    strangers = set(rng.sample(names, round(len(names) * stranger_share)))
    enrolled: dict[str, list[Path]] = {}
    probes: list[tuple[str, Path]] = []
    for name in names:
        photos = list(people[name])
        if name in strangers:
            probes += [(name, p) for p in photos]
            continue
        rng.shuffle(photos)
        if len(photos) <= enrol:
            raise ValueError(f"{name} has {len(photos)} photos; enrolling {enrol} leaves no probe")
        enrolled[name] = sorted(photos[:enrol])
        probes += [(name, p) for p in sorted(photos[enrol:])]
    return Split(enrolled, probes, strangers)


@dataclass
class OperatingPoint:
    threshold: float
    false_accept: float
    false_reject: float


@dataclass
class IdentificationResult:
    rank1: float
    false_accept: float
    false_reject: float
    misidentified: float
    threshold: float
    people_enrolled: int
    strangers: int
    known_probes: int
    stranger_probes: int
    not_found: int
    recommended_threshold: float
    false_accept_target: float
    operating_points: list[OperatingPoint] = field(default_factory=list)
    enrolled_without_face: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, object]:
        return {
            "rank1": self.rank1,
            "false_accept": self.false_accept,
            "false_reject": self.false_reject,
            "misidentified": self.misidentified,
            "threshold": self.threshold,
            "recommended_threshold": self.recommended_threshold,
            "false_accept_target": self.false_accept_target,
            "people_enrolled": self.people_enrolled,
            "strangers": self.strangers,
            "known_probes": self.known_probes,
            "stranger_probes": self.stranger_probes,
            "not_found": self.not_found,
            "not_found_policy": "enrolment photos without a face are skipped; probes without "
            "a face count as missed (false reject) or, for strangers, as correctly rejected",
            "enrolled_without_face": self.enrolled_without_face,
            "operating_points": [vars(p) for p in self.operating_points],
        }


@dataclass(frozen=True)
class _Nearest:
    distance: float  # inf when the probe has no face
    right: bool  # the nearest enrolled descriptor belongs to the probe's person


def _nearest(
    probes: list[tuple[str, Path]],
    codes: dict[Path, Descriptor | None],
    gallery: NDArray[np.float32],
    labels: NDArray[np.str_],
) -> list[_Nearest]:
    out = []
    for name, photo in probes:
        code = codes[photo]
        if code is None:
            out.append(_Nearest(float("inf"), False))
            continue
        d = np.linalg.norm(gallery - code, axis=1)
        best = int(np.argmin(d))
        out.append(_Nearest(float(d[best]), bool(labels[best] == name)))
    return out


def _rates(known: list[_Nearest], strangers: list[_Nearest], t: float) -> tuple[float, float]:
    false_accept = sum(n.distance < t for n in strangers) / max(1, len(strangers))
    accepted_right = sum(n.right and n.distance < t for n in known)
    return false_accept, (len(known) - accepted_right) / max(1, len(known))


def evaluate(
    split: Split,
    codes: dict[Path, Descriptor | None],
    threshold: float,
    *,
    false_accept_target: float = 0.01,
) -> IdentificationResult:
    labels: list[str] = []
    vectors: list[Descriptor] = []
    without_face = []
    for name, photos in split.enrolled.items():
        found = [v for p in photos if (v := codes[p]) is not None]
        if not found:
            without_face.append(name)
        labels += [name] * len(found)
        vectors += found
    gallery = np.stack(vectors)
    label_array = np.array(labels)
    known = _nearest(
        [(n, p) for n, p in split.probes if n not in split.strangers], codes, gallery, label_array
    )
    strangers = _nearest(
        [(n, p) for n, p in split.probes if n in split.strangers], codes, gallery, label_array
    )
    false_accept, false_reject = _rates(known, strangers, threshold)
    grid = [round(t, 3) for t in np.arange(0.30, 0.701, 0.01)]
    points = [OperatingPoint(t, *_rates(known, strangers, t)) for t in grid]
    fine = np.arange(0.20, 0.80, 0.001)
    passing = [t for t in fine if _rates(known, strangers, t)[0] <= false_accept_target]
    return IdentificationResult(
        rank1=sum(n.right for n in known) / max(1, len(known)),
        false_accept=false_accept,
        false_reject=false_reject,
        misidentified=sum(not n.right and n.distance < threshold for n in known)
        / max(1, len(known)),
        threshold=threshold,
        people_enrolled=len(split.enrolled),
        strangers=len(split.strangers),
        known_probes=len(known),
        stranger_probes=len(strangers),
        not_found=sum(1 for _, p in split.probes if codes[p] is None)
        + sum(1 for ps in split.enrolled.values() for p in ps if codes[p] is None),
        recommended_threshold=round(float(max(passing)), 3) if passing else 0.0,
        false_accept_target=false_accept_target,
        operating_points=points,
        enrolled_without_face=without_face,
    )
