"""Real faces for the cloud and kiosk tests: descriptors and crops as a kiosk would send them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2

from contract import Embedding, FaceCrop
from facelib.analyzer import FaceAnalyzer
from facelib.config import FaceLibSettings
from facelib.images import read_rgb


@dataclass(frozen=True)
class FaceSample:
    photo: Path
    embedding: Embedding
    crop: FaceCrop


@lru_cache(maxsize=1)
def _analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(FaceLibSettings(estimate_age_gender=False))


@lru_cache(maxsize=256)
def face_sample(photo: Path) -> FaceSample:
    faces = _analyzer().analyze(read_rgb(photo))
    if not faces or faces[0].descriptor is None:
        raise AssertionError(f"no face found in {photo}")
    face = max(faces, key=lambda f: f.detection.box.area)
    assert face.descriptor is not None
    ok, jpeg = cv2.imencode(
        ".jpg",
        cv2.cvtColor(face.chips.embedding, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 90],
    )
    assert ok
    return FaceSample(
        photo=photo,
        embedding=Embedding(vector=[float(v) for v in face.descriptor], quality=0.9),
        crop=FaceCrop(jpeg_base64=base64.b64encode(jpeg.tobytes()).decode("ascii")),
    )
