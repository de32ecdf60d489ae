"""Age and gender from the face crop a till sends (the aligned 150x150 embedding chip)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cloud_api.services.errors import Unprocessable
from contract import Demographics, FaceCrop, jpeg_size
from facelib.age_gender import AgeEstimator, GenderEstimator
from facelib.alignment import AGE_CHIP, EMBEDDING_CHIP, GENDER_CHIP, rechip
from facelib.config import RuntimeSettings
from facelib.types import RGBImage
from models.store import ModelStore

#: what a crop's header may claim before it is decoded: the aligned chip, nothing larger
CHIP_SIDE = EMBEDDING_CHIP[0]
MAX_CROP_PIXELS = CHIP_SIDE * CHIP_SIDE


def decode_crop(crop: FaceCrop) -> RGBImage:
    """The crop as an RGB chip. Untrusted bytes: the size the JPEG header claims is checked
    before anything is decoded (a few hundred bytes may claim 60000x60000 pixels)."""
    data = crop.jpeg()
    claimed = jpeg_size(data)
    if claimed is None:
        raise Unprocessable("face_crop: not a JPEG image with a frame header")
    if claimed[0] * claimed[1] > MAX_CROP_PIXELS:
        raise Unprocessable(
            f"face_crop: the JPEG header claims {claimed[0]}x{claimed[1]} pixels, more than "
            f"the {CHIP_SIDE}x{CHIP_SIDE} chip"
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise Unprocessable("face_crop: the JPEG could not be decoded")
    size = EMBEDDING_CHIP[0]
    if bgr.shape[:2] != (size, size):
        raise Unprocessable(
            f"face_crop: expected the aligned {size}x{size} chip, got {bgr.shape[1]}x{bgr.shape[0]}"
        )
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


@dataclass(frozen=True)
class Chips:
    """A decoded crop, cut for each network: what `DemographicsEstimator.infer` takes."""

    age: RGBImage
    gender: RGBImage


def prepare(crop: FaceCrop) -> Chips:
    """Decode and cut a crop: thread-safe, so done before taking the estimator's lock."""
    chip = decode_crop(crop)
    return Chips(rechip(chip, EMBEDDING_CHIP, AGE_CHIP), rechip(chip, EMBEDDING_CHIP, GENDER_CHIP))


class DemographicsEstimator:
    """Loads Cydral's age and gender networks once; thread-safe (onnxruntime's `run` may be
    called from several threads at once, and nothing else here is shared). `prepare` decodes
    the untrusted crop after checking its header; `infer` runs the networks."""

    def __init__(self, store: ModelStore | None = None, runtime: RuntimeSettings | None = None):
        store = store if store is not None else ModelStore()
        runtime = runtime if runtime is not None else RuntimeSettings()
        self._age = AgeEstimator(store, runtime)
        self._gender = GenderEstimator(store, runtime)
        self._age.warmup()
        self._gender.warmup()

    def estimate(self, crop: FaceCrop) -> Demographics:
        return self.infer(prepare(crop))

    def infer(self, chips: Chips) -> Demographics:
        age = self._age.estimate([chips.age])[0]
        gender = self._gender.estimate([chips.gender])[0]
        return Demographics(
            age_years=round(age.years, 1),
            age_confidence=round(age.confidence, 3),
            gender=gender.label,
            gender_confidence=round(gender.confidence, 3),
        )
