"""Measure where detector keypoints fall in dlib's 5-point template frame.

For each photo, dlib's HOG detector and 5-point predictor give the similarity transform dlib
itself would align with; the detector's landmarks are mapped through it, and the median over
all photos is the template (`facelib.alignment.DETECTOR_TEMPLATE`). dlib (the `dlib-bin` dev
dependency) is the reference here only; it never runs in the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from facelib.alignment import DLIB_TEMPLATE_5, similarity_transform
from facelib.detectors import FaceDetector
from facelib.images import read_rgb


@dataclass(frozen=True)
class Calibration:
    faces: int
    median: NDArray[np.float64]  # (4, 2), Landmark order, unit template frame
    spread: NDArray[np.float64]  # (4,), RMS distance from the median, in template units


class DlibReference:
    """dlib's HOG detector and 5-point predictor: the alignment dlib's networks were trained on."""

    def __init__(self, predictor_path: Path) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))

    def landmarks(self, image: NDArray[np.uint8]) -> NDArray[np.float64] | None:
        """The 5 points of the one face dlib finds (upsampled once), or None."""
        faces = self._detector(image, 1)
        if len(faces) != 1:
            return None
        shape = self._predictor(image, faces[0])
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)


def calibrate(detector: FaceDetector, images: list[Path], predictor_path: Path) -> Calibration:
    dlib_reference = DlibReference(predictor_path)
    mapped = []
    for path in tqdm(images, desc="calibrating", unit="photo"):
        image = read_rgb(path)
        reference = dlib_reference.landmarks(image)
        if reference is None:
            continue
        detections = detector.detect(image)
        if not detections:
            continue
        centre = reference[:4].mean(0)
        nearest = min(
            detections, key=lambda d: float(np.linalg.norm(d.landmarks[:2].mean(0) - centre))
        )
        transform = similarity_transform(reference, DLIB_TEMPLATE_5)
        mapped.append(nearest.landmarks.astype(np.float64) @ transform[:, :2].T + transform[:, 2])
    if not mapped:
        raise ValueError("no photo had exactly one face found by both dlib and the detector")
    points = np.stack(mapped)
    median = np.median(points, axis=0)
    spread = np.sqrt(((points - median) ** 2).sum(-1).mean(0))
    return Calibration(len(points), median, spread)
