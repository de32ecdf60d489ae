"""Detectors on real photos: recall against dlib's labelled boxes, keypoints, both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.detection import evaluate, read_dlib_boxes
from facelib.config import DetectorSettings
from facelib.detectors import create_detector
from facelib.detectors.tiling import tile_origins
from facelib.images import read_rgb
from facelib.types import Landmark
from models.store import ModelStore
from tests.conftest import require


@pytest.mark.slow
def test_group_photos_recall_at_least_90_percent(data_dir: Path, store: ModelStore) -> None:
    group = data_dir / "group"
    xml = [require(group / "dlib_faces_training.xml"), require(group / "dlib_faces_testing.xml")]
    detector = create_detector(DetectorSettings(range="full", tile=True), store)
    report = evaluate(detector, read_dlib_boxes(xml), min_width=40, min_iou=0.4)
    print(
        f"\n{detector.name}: {report.matched}/{report.labelled} labelled faces >= 40 px found "
        f"(recall {report.recall:.3f}), {report.detections} detections, "
        f"{report.false_detections} false ({report.false_per_image:.2f} per image)"
    )
    assert report.labelled >= 20
    assert report.recall >= 0.90
    assert report.false_per_image <= 0.5


@pytest.mark.parametrize("backend", ["mediapipe", "yunet"])
def test_backends_find_two_faces_with_ordered_landmarks(
    backend: str, data_dir: Path, store: ModelStore
) -> None:
    image = read_rgb(require(data_dir / "group" / "face_recognition_two_people.jpg"))
    detector = create_detector(DetectorSettings(type=backend, range="full"), store)
    faces = detector.detect(image)
    assert len(faces) == 2
    for face in faces:
        left = face.landmarks[Landmark.EYE_IMAGE_LEFT]
        right = face.landmarks[Landmark.EYE_IMAGE_RIGHT]
        nose = face.landmarks[Landmark.NOSE_TIP]
        mouth = face.landmarks[Landmark.MOUTH_CENTER]
        assert left[0] < right[0]  # upright faces: the subject's right eye is on the image left
        assert max(left[1], right[1]) < nose[1] < mouth[1]
        box = face.box
        assert box.x1 <= nose[0] <= box.x2 and box.y1 <= nose[1] <= box.y2
        assert 0.5 <= face.score <= 1.0


def test_blank_image_has_no_faces(store: ModelStore) -> None:
    detector = create_detector(DetectorSettings(), store)
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_tiles_cover_the_image_with_overlap() -> None:
    origins = tile_origins(375, 500, 256)
    covered = np.zeros((375, 500), bool)
    for y, x in origins:
        covered[y : y + 256, x : x + 256] = True
    assert covered.all()
    assert tile_origins(200, 250, 256) == []
