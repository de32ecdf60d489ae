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
    enrolled_without_face: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, object]:
        return {
            "rank1": self.rank1,
            "false_accept": self.false_accept,
            "false_reject": self.false_reject,
            "misidentified": self.misidentified,
            "threshold": self.threshold,
            "people_enrolled": self.people_enrolled,
            "strangers": self.strangers,
            "known_probes": self.known_probes,
            "stranger_probes": self.stranger_probes,
            "not_found": self.not_found,
            "not_found_policy": "enrolment photos without a face are skipped; probes without "
            "a face count as missed (false reject) or, for strangers, as correctly rejected",
            "enrolled_without_face": self.enrolled_without_face,
        }


def evaluate(
    split: Split, codes: dict[Path, Descriptor | None], threshold: float
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

    known = [(n, p) for n, p in split.probes if n not in split.strangers]
    strangers = [(n, p) for n, p in split.probes if n in split.strangers]
    rank1_hits = accepted_right = accepted_wrong = 0
    for name, photo in known:
        code = codes[photo]
        if code is None:
            continue
        d = np.linalg.norm(gallery - code, axis=1)
        best = int(np.argmin(d))
        right = label_array[best] == name
        rank1_hits += int(right)
        if d[best] < threshold:
            accepted_right += int(right)
            accepted_wrong += int(not right)
    false_accepts = 0
    for _, photo in strangers:
        code = codes[photo]
        if code is not None and float(np.min(np.linalg.norm(gallery - code, axis=1))) < threshold:
            false_accepts += 1
    probes = split.probes
    return IdentificationResult(
        rank1=rank1_hits / max(1, len(known)),
        false_accept=false_accepts / max(1, len(strangers)),
        false_reject=(len(known) - accepted_right) / max(1, len(known)),
        misidentified=accepted_wrong / max(1, len(known)),
        threshold=threshold,
        people_enrolled=len(split.enrolled),
        strangers=len(split.strangers),
        known_probes=len(known),
        stranger_probes=len(strangers),
        not_found=sum(1 for _, p in probes if codes[p] is None)
        + sum(1 for ps in split.enrolled.values() for p in ps if codes[p] is None),
        enrolled_without_face=without_face,
    )
