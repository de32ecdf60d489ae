"""How good a face shot is for recognition, from the detection and the aligned chip.

Four scores in [0, 1], multiplied so that any one poor factor makes a poor shot:

* size: eye distance in source pixels (below ~12 px a face carries little identity; 40 px and
  more is as good as it gets for a 150 px chip);
* frontal: from the keypoints: how far the nose sits from the eyes' midline (yaw) and how
  tilted the eye line is (roll); the embedder tolerates some of both;
* sharpness: variance of the Laplacian on the grey chip (motion blur and focus);
* detector confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facelib.types import Detection, Landmark, RGBImage

SIZE_MIN_EYES_PX = 8.0
SIZE_FULL_EYES_PX = 40.0
#: Laplacian variance on a 150 px chip at which a shot counts as fully sharp (chips of
#: small faces are upscaled, so their variance is low; size already accounts for that).
SHARPNESS_FULL = 100.0
YAW_LIMIT = 0.6  # nose offset from the eyes' midline, in eye distances, where frontal -> 0
ROLL_LIMIT_DEG = 45.0


@dataclass(frozen=True, slots=True)
class ShotQuality:
    size: float
    frontal: float
    sharpness: float
    confidence: float

    @property
    def value(self) -> float:
        return self.size * self.frontal * self.sharpness * self.confidence

    @property
    def without_sharpness(self) -> float:
        """An upper bound of `value` before the chip is cut (sharpness at most 1)."""
        return self.size * self.frontal * self.confidence


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def geometry_quality(detection: Detection) -> ShotQuality:
    """Everything but sharpness, which needs the chip; sharpness is set to 1."""
    marks = detection.landmarks
    left, right = marks[Landmark.EYE_IMAGE_LEFT], marks[Landmark.EYE_IMAGE_RIGHT]
    nose = marks[Landmark.NOSE_TIP]
    eyes = float(np.linalg.norm(right - left))
    size = _clip((eyes - SIZE_MIN_EYES_PX) / (SIZE_FULL_EYES_PX - SIZE_MIN_EYES_PX))
    if eyes < 1e-6:
        return ShotQuality(0.0, 0.0, 1.0, detection.score)
    axis = (right - left) / eyes
    midpoint = (left + right) / 2
    # signed distance of the nose from the perpendicular through the eyes' midpoint
    yaw = abs(float(np.dot(nose - midpoint, axis))) / eyes
    roll = abs(math.degrees(math.atan2(float(axis[1]), float(axis[0]))))
    frontal = _clip(1.0 - yaw / YAW_LIMIT) * _clip(1.0 - roll / ROLL_LIMIT_DEG)
    return ShotQuality(size, frontal, 1.0, _clip(detection.score))


def sharpness(chip: RGBImage) -> float:
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    variance = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return _clip(variance / SHARPNESS_FULL)
