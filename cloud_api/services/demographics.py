"""Age and gender from the face crop a till sends (the aligned 150x150 embedding chip)."""

from __future__ import annotations

import cv2
import numpy as np

from cloud_api.services.errors import Unprocessable
from contract import Demographics, FaceCrop
from facelib.age_gender import AgeEstimator, GenderEstimator
from facelib.alignment import AGE_CHIP, EMBEDDING_CHIP, GENDER_CHIP, rechip
from facelib.config import RuntimeSettings
from facelib.types import RGBImage
from models.store import ModelStore


def decode_crop(crop: FaceCrop) -> RGBImage:
    raw = np.frombuffer(crop.jpeg(), dtype=np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise Unprocessable("face_crop: the JPEG could not be decoded")
    size = EMBEDDING_CHIP[0]
    if bgr.shape[:2] != (size, size):
        raise Unprocessable(
            f"face_crop: expected the aligned {size}x{size} chip, got {bgr.shape[1]}x{bgr.shape[0]}"
        )
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


class DemographicsEstimator:
    """Loads Cydral's age and gender networks once; thread-safe (onnxruntime's `run` may be
    called from several threads at once, and nothing else here is shared)."""

    def __init__(self, store: ModelStore | None = None, runtime: RuntimeSettings | None = None):
        store = store if store is not None else ModelStore()
        runtime = runtime if runtime is not None else RuntimeSettings()
        self._age = AgeEstimator(store, runtime)
        self._gender = GenderEstimator(store, runtime)
        self._age.warmup()
        self._gender.warmup()

    def estimate(self, crop: FaceCrop) -> Demographics:
        chip = decode_crop(crop)
        age = self._age.estimate([rechip(chip, EMBEDDING_CHIP, AGE_CHIP)])[0]
        gender = self._gender.estimate([rechip(chip, EMBEDDING_CHIP, GENDER_CHIP)])[0]
        return Demographics(
            age_years=round(age.years, 1),
            age_confidence=round(age.confidence, 3),
            gender=gender.label,
            gender_confidence=round(gender.confidence, 3),
        )
