"""The detector port and the registry that builds a backend from settings."""

from __future__ import annotations

from typing import Protocol

from facelib.config import DetectorSettings
from facelib.types import Detection, RGBImage
from models.store import ModelStore


class FaceDetector(Protocol):
    """Finds faces in an RGB image. Implementations are safe to call from one thread at a time."""

    name: str

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def close(self) -> None: ...


def create_detector(settings: DetectorSettings, store: ModelStore) -> FaceDetector:
    """Build the configured backend, wrapped for tiling when asked."""
    detector: FaceDetector
    if settings.type == "mediapipe":
        from facelib.detectors.mediapipe_blazeface import BlazeFaceDetector

        detector = BlazeFaceDetector(store, range_=settings.range, min_score=settings.min_score)
    else:
        from facelib.detectors.yunet import YuNetDetector

        detector = YuNetDetector(store, min_score=settings.min_score)
    if settings.tile:
        from facelib.detectors.tiling import TiledDetector

        detector = TiledDetector(detector, tile_size=settings.tile_size)
    return detector
