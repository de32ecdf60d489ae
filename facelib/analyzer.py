"""detect -> align -> estimate, on numpy RGB images, with every model loaded once."""

from __future__ import annotations

import time

import numpy as np
import structlog

from facelib.age_gender import AgeEstimator, GenderEstimator
from facelib.alignment import AGE_CHIP, EMBEDDING_CHIP, GENDER_CHIP, align
from facelib.config import FaceLibSettings
from facelib.detectors import FaceDetector, create_detector
from facelib.embedder import FaceEmbedder
from facelib.image_checks import checked_image
from facelib.types import (
    AgeEstimate,
    AlignedChips,
    Detection,
    FaceAnalysis,
    FloatArray,
    GenderEstimate,
    RGBImage,
)
from models.store import ModelStore

log = structlog.get_logger(__name__)


class FaceAnalyzer:
    """The face library's front door. Not thread-safe: give each worker thread its own."""

    def __init__(self, settings: FaceLibSettings | None = None, store: ModelStore | None = None):
        self.settings = settings if settings is not None else FaceLibSettings()
        store = store if store is not None else ModelStore()
        started = time.perf_counter()
        self.detector: FaceDetector = create_detector(self.settings.detector, store)
        self.age: AgeEstimator | None = None
        self.gender: GenderEstimator | None = None
        if self.settings.estimate_age_gender:
            self.age = AgeEstimator(store, self.settings.runtime)
            self.gender = GenderEstimator(store, self.settings.runtime)
        self.embedder: FaceEmbedder | None = None
        if self.settings.embed:
            self.embedder = FaceEmbedder(
                store, self.settings.runtime, flip_average=self.settings.recognition.flip_average
            )
        if self.settings.warmup:
            self.warmup()
        log.info(
            "face_analyzer_ready",
            detector=self.detector.name,
            age_gender=self.settings.estimate_age_gender,
            embed=self.settings.embed,
            load_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def warmup(self) -> None:
        self.detector.detect(np.zeros((128, 128, 3), dtype=np.uint8))
        for model in (self.age, self.gender, self.embedder):
            if model is not None:
                model.warmup()

    def detect(self, image: RGBImage) -> list[Detection]:
        image = checked_image(image, max_pixels=self.settings.max_image_pixels)
        return self.detector.detect(image)

    def analyze(self, image: RGBImage) -> list[FaceAnalysis]:
        image = checked_image(image, max_pixels=self.settings.max_image_pixels)
        detections = self.detector.detect(image)
        chips = [cut_chips(image, d) for d in detections]
        count = len(detections)
        ages: list[AgeEstimate | None] = [None] * count
        genders: list[GenderEstimate | None] = [None] * count
        descriptors: list[FloatArray | None] = [None] * count
        if count and self.age is not None and self.gender is not None:
            ages = list(self.age.estimate([c.age for c in chips]))
            genders = list(self.gender.estimate([c.gender for c in chips]))
        if count and self.embedder is not None:
            descriptors = list(self.embedder.embed([c.embedding for c in chips]))
        return [
            FaceAnalysis(d, c, age=a, gender=g, descriptor=e)
            for d, c, a, g, e in zip(detections, chips, ages, genders, descriptors, strict=True)
        ]

    def close(self) -> None:
        self.detector.close()


def cut_chips(image: RGBImage, detection: Detection) -> AlignedChips:
    return AlignedChips(
        embedding=align(image, detection.landmarks, *EMBEDDING_CHIP),
        age=align(image, detection.landmarks, *AGE_CHIP),
        gender=align(image, detection.landmarks, *GENDER_CHIP),
    )
