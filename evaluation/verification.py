"""Face verification on LFW-style pairs: k-fold accuracy, TAR at a fixed FAR, a threshold.

The pairs file is LFW's `pairs.txt` format: a first line `folds pairs_per_class`, then per fold
`pairs_per_class` same-person lines (`name i j`) followed by as many different-person lines
(`name1 i name2 j`); image i of `name` is `<images>/name/name_{i:04d}.jpg` in the original
layout, or `<images>/name/{i:04d}.jpg` as in the shared data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from evaluation.face_encoding import Descriptor

#: Distance given to a pair when a face was not found in one of its photos: the pair is
#: answered "different", which is what the product does when it cannot see a face.
NOT_FOUND_DISTANCE = float("inf")


@dataclass(frozen=True)
class Pair:
    first: Path
    second: Path
    same: bool
    fold: int


def _photo(images: Path, name: str, index: str) -> Path:
    number = int(index)
    plain = images / name / f"{number:04d}.jpg"
    return plain if plain.exists() else images / name / f"{name}_{number:04d}.jpg"


def read_pairs(pairs_file: Path, images: Path) -> list[Pair]:
    lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    if not lines or len(lines[0]) != 2:
        raise ValueError(f"{pairs_file}: the first line must be '<folds> <pairs per class>'")
    folds, per_class = (int(v) for v in lines[0])
    body = lines[1:]
    if len(body) != folds * per_class * 2:
        raise ValueError(
            f"{pairs_file}: expected {folds * per_class * 2} pairs for {folds} folds of "
            f"{per_class} same + {per_class} different, found {len(body)}"
        )
    pairs = []
    for number, fields in enumerate(body):
        fold = number // (2 * per_class)
        if len(fields) == 3:
            name, i, j = fields
            pairs.append(Pair(_photo(images, name, i), _photo(images, name, j), True, fold))
        elif len(fields) == 4:
            n1, i, n2, j = fields
            pairs.append(Pair(_photo(images, n1, i), _photo(images, n2, j), False, fold))
        else:
            raise ValueError(f"{pairs_file}: line {number + 2} is not a pair: {' '.join(fields)}")
    missing = sorted(
        {str(p) for pair in pairs for p in (pair.first, pair.second) if not p.exists()}
    )
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} photos named in {pairs_file} are missing, e.g. {missing[0]}"
        )
    return pairs


@dataclass(frozen=True)
class VerificationResult:
    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    threshold: float
    tar_at_far_1e_3: float
    threshold_at_far_1e_3: float
    pairs: int
    not_found: int
    pairs_without_face: int

    def figures(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "tar_at_far_1e-3": self.tar_at_far_1e_3,
            "threshold": self.threshold,
            "threshold_at_far_1e-3": self.threshold_at_far_1e_3,
            "not_found": self.not_found,
            "not_found_policy": "a pair with a photo where no face was found counts as "
            "'different' (a miss for same-person pairs)",
            "pairs_without_face": self.pairs_without_face,
            "pairs": self.pairs,
            "fold_accuracies": self.fold_accuracies,
            "fold_thresholds": self.fold_thresholds,
        }


def pair_distances(pairs: list[Pair], codes: dict[Path, Descriptor | None]) -> NDArray[np.float64]:
    out = np.empty(len(pairs), dtype=np.float64)
    for k, pair in enumerate(pairs):
        a, b = codes[pair.first], codes[pair.second]
        out[k] = NOT_FOUND_DISTANCE if a is None or b is None else float(np.linalg.norm(a - b))
    return out


def best_threshold(distances: NDArray[np.float64], same: NDArray[np.bool_]) -> float:
    """The threshold (same when distance < t) with the highest accuracy; midpoint of ties."""
    finite = np.sort(np.unique(distances[np.isfinite(distances)]))
    if finite.size == 0:
        return 0.0
    candidates = np.concatenate(
        [[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]]
    )
    correct = np.array([np.sum((distances < t) == same) for t in candidates])
    best = np.flatnonzero(correct == correct.max())
    return float((candidates[best[0]] + candidates[best[-1]]) / 2)


def tar_at_far(
    distances: NDArray[np.float64], same: NDArray[np.bool_], far: float
) -> tuple[float, float]:
    """Share of same pairs accepted at the largest threshold whose false-accept rate <= far."""
    impostors = np.sort(distances[~same])
    allowed = int(np.floor(far * impostors.size))  # impostor pairs that may fall below t
    threshold = float(impostors[allowed]) if allowed < impostors.size else float("inf")
    genuine = distances[same]
    return float(np.mean(genuine < threshold)), threshold


def evaluate(pairs: list[Pair], codes: dict[Path, Descriptor | None]) -> VerificationResult:
    distances = pair_distances(pairs, codes)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        train = folds != fold
        t = best_threshold(distances[train], same[train])
        test = ~train
        accuracies.append(float(np.mean((distances[test] < t) == same[test])))
        thresholds.append(t)
    tar, t_far = tar_at_far(distances, same, 1e-3)
    photos = {p for pair in pairs for p in (pair.first, pair.second)}
    return VerificationResult(
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        fold_accuracies=accuracies,
        fold_thresholds=thresholds,
        threshold=best_threshold(distances, same),
        tar_at_far_1e_3=tar,
        threshold_at_far_1e_3=t_far,
        pairs=len(pairs),
        not_found=sum(1 for p in photos if codes[p] is None),
        pairs_without_face=int(np.sum(~np.isfinite(distances))),
    )
