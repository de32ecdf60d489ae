"""Age and gender accuracy of the face library on labelled face photos (UTKFace layout)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facelib.analyzer import FaceAnalyzer
from facelib.images import read_rgb
from facelib.types import FaceAnalysis


@dataclass(frozen=True)
class LabelledFace:
    file: str
    age: float
    gender: str


@dataclass(frozen=True)
class AgeGenderReport:
    n: int
    not_found: int
    age_mae: float
    age_mae_18_70: float
    gender_accuracy: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def read_labels(path: Path) -> list[LabelledFace]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "age", "gender"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        faces = []
        for line, row in enumerate(reader, start=2):
            gender = row["gender"].strip().lower()
            if gender not in ("female", "male"):
                raise ValueError(f"{path}:{line}: gender must be female or male, got {gender!r}")
            faces.append(LabelledFace(row["file"], float(row["age"]), gender))
    return faces


def main_face(faces: list[FaceAnalysis], width: int, height: int) -> FaceAnalysis | None:
    """The face a labelled crop is about: the largest, ties broken by nearness to the centre."""
    if not faces:
        return None
    centre = np.array([width / 2, height / 2])

    def key(face: FaceAnalysis) -> tuple[float, float]:
        box = face.detection.box
        middle = np.array([(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2])
        return (-box.area, float(np.linalg.norm(middle - centre)))

    return min(faces, key=key)


def evaluate(
    analyzer: FaceAnalyzer, labels: list[LabelledFace], images: Path, *, progress: bool = True
) -> AgeGenderReport:
    errors: list[float] = []
    errors_adult: list[float] = []
    correct = 0
    not_found = 0
    for item in tqdm(labels, desc="age/gender", unit="face", disable=not progress):
        image = read_rgb(images / item.file)
        face = main_face(analyzer.analyze(image), image.shape[1], image.shape[0])
        if face is None or face.age is None or face.gender is None:
            not_found += 1
            continue
        error = abs(face.age.years - item.age)
        errors.append(error)
        if 18 <= item.age <= 70:
            errors_adult.append(error)
        correct += face.gender.label == item.gender
    found = len(errors)
    return AgeGenderReport(
        n=len(labels),
        not_found=not_found,
        age_mae=float(np.mean(errors)) if errors else float("nan"),
        age_mae_18_70=float(np.mean(errors_adult)) if errors_adult else float("nan"),
        gender_accuracy=correct / found if found else float("nan"),
    )
