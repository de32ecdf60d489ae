"""Builds the configured detector backend from settings (kept apart from the port in
`base.py`, which the backends and the tiling wrapper import)."""

from __future__ import annotations

from facelib.config import DetectorSettings
from facelib.detectors.base import FaceDetector
from models.store import ModelStore


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
