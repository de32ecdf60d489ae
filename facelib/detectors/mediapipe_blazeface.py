"""MediaPipe BlazeFace (short- or full-range) through `mediapipe.solutions.face_detection`.

MediaPipe's graph loads the .tflite from inside its own package, so before building the graph
this adapter checks that file's sha256 against the manifest entry: the model that runs is the
model the manifest records and licenses.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np

from facelib.types import Box, Detection, RGBImage
from models.errors import ModelCorruptError, ModelMissingError
from models.store import ModelStore, verify_file

#: BlazeFace keypoint order: right eye, left eye, nose tip, mouth centre, right/left ear tragion.
#: The subject's right eye appears on the image's left.
_TO_LANDMARKS = [0, 1, 2, 3]


class BlazeFaceDetector:
    def __init__(
        self, store: ModelStore, *, range_: Literal["short", "full"], min_score: float
    ) -> None:
        from mediapipe.python.solutions import face_detection

        self._model_name = "blazeface_short_range" if range_ == "short" else "blazeface_full_range"
        self.name = f"mediapipe-{range_}"
        spec = store.spec(self._model_name)
        if spec.source is None:
            raise ModelMissingError(f"model {self._model_name!r} must come from a wheel")
        packaged = _packaged_model(spec.source.path_in_wheel)
        if not packaged.is_file():
            raise ModelMissingError(
                f"model {self._model_name!r}: {packaged} is missing from the installed "
                f"mediapipe package (expected {spec.source.requirement})"
            )
        try:
            verify_file(self._model_name, spec, packaged)
        except ModelCorruptError as error:
            raise ModelCorruptError(f"{error} — reinstall {spec.source.requirement}") from error
        self._solution = face_detection.FaceDetection(
            model_selection=0 if range_ == "short" else 1, min_detection_confidence=min_score
        )
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        with self._lock:
            result = self._solution.process(image)
        found = []
        for det in result.detections or []:
            location = det.location_data
            rel = location.relative_bounding_box
            box = Box(
                rel.xmin * width,
                rel.ymin * height,
                (rel.xmin + rel.width) * width,
                (rel.ymin + rel.height) * height,
            )
            keypoints = np.array(
                [[kp.x * width, kp.y * height] for kp in location.relative_keypoints],
                dtype=np.float32,
            )
            found.append(
                Detection(
                    box=box,
                    score=float(det.score[0]),
                    landmarks=keypoints[_TO_LANDMARKS].copy(),
                    raw_keypoints=keypoints,
                    detector=self.name,
                )
            )
        return found

    def close(self) -> None:
        with self._lock:
            self._solution.close()


def _packaged_model(path_in_wheel: str) -> Path:
    import mediapipe

    package_root = Path(mediapipe.__file__).resolve().parent.parent
    return package_root / path_in_wheel
