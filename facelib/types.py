"""Typed results of the face library. Coordinates are pixels in the input image."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
RGBImage = NDArray[np.uint8]


class Landmark(IntEnum):
    """The four points every detector reports and alignment uses, as seen in the image."""

    EYE_IMAGE_LEFT = 0  # the subject's right eye
    EYE_IMAGE_RIGHT = 1  # the subject's left eye
    NOSE_TIP = 2
    MOUTH_CENTER = 3


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box, (x1, y1) top-left inclusive, (x2, y2) bottom-right exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by a detector.

    `landmarks` is (4, 2) in `Landmark` order; `raw_keypoints` holds every keypoint the
    backend reports (six for BlazeFace, five for YuNet) in the backend's own order.
    """

    box: Box
    score: float
    landmarks: FloatArray
    raw_keypoints: FloatArray
    detector: str


@dataclass(frozen=True, slots=True)
class AgeEstimate:
    """Expected age over the network's 81 classes.

    `std_years` is the spread of the predicted distribution; `confidence` is the probability
    mass within `AGE_CONFIDENCE_WINDOW` years of `years`.
    """

    years: float
    std_years: float
    confidence: float


@dataclass(frozen=True, slots=True)
class GenderEstimate:
    label: Literal["female", "male"]
    confidence: float  # probability of `label`, 0.5..1


@dataclass(frozen=True, slots=True)
class AlignedChips:
    """Face chips cut by similarity transforms to dlib's 5-point template."""

    embedding: RGBImage  # 150x150, padding 0.25: the face recogniser's input
    age: RGBImage  # 64x64, padding 0.2
    gender: RGBImage  # 32x32, padding 0.2


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    detection: Detection
    chips: AlignedChips
    age: AgeEstimate | None = None
    gender: GenderEstimate | None = None
    descriptor: FloatArray | None = None  # (128,) float32, see facelib.embedder
    extra: dict[str, float] = field(default_factory=dict)
