"""YuNet (OpenCV Zoo, MIT) through `cv2.FaceDetectorYN`, on the fetched and verified ONNX file."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from facelib.types import Box, Detection, RGBImage
from models.store import ModelStore

_NMS_THRESHOLD = 0.3
_TOP_K = 500


class YuNetDetector:
    name = "yunet"

    def __init__(self, store: ModelStore, *, min_score: float) -> None:
        path = store.path("yunet")
        self._detector = cv2.FaceDetectorYN.create(
            str(path), "", (320, 320), min_score, _NMS_THRESHOLD, _TOP_K
        )
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._detector.setInputSize((width, height))
            _, faces = self._detector.detect(bgr)
        found = []
        for row in faces if faces is not None else []:
            x, y, w, h = (float(v) for v in row[:4])
            # right eye, left eye, nose tip, right mouth corner, left mouth corner
            keypoints = np.asarray(row[4:14], dtype=np.float32).reshape(5, 2)
            mouth = (keypoints[3] + keypoints[4]) / 2.0
            landmarks = np.stack([keypoints[0], keypoints[1], keypoints[2], mouth])
            found.append(
                Detection(
                    box=Box(x, y, x + w, y + h),
                    score=float(row[14]),
                    landmarks=landmarks.astype(np.float32),
                    raw_keypoints=keypoints,
                    detector=self.name,
                )
            )
        return found

    def close(self) -> None:
        return None
