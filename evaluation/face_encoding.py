"""Turn labelled photos into descriptors, with the product pipeline or dlib's as reference.

Both pipelines take the face nearest the image centre when a photo holds several (LFW and
gallery photos are centred on their subject) and report photos where no face was found as
None, so callers can say what they did with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from facelib.alignment import EMBEDDING_CHIP, align
from facelib.images import read_rgb
from facelib.types import Box, Detection, RGBImage

Descriptor = NDArray[np.float32]


class Pipeline(Protocol):
    name: str

    def chip(self, image: RGBImage) -> RGBImage | None:
        """The aligned 150x150 chip of the most central face, or None when none is found."""

    def embed(self, chips: Sequence[RGBImage]) -> NDArray[np.float32]: ...

    def close(self) -> None: ...


def central(boxes: Sequence[Box], width: int, height: int) -> int:
    cx, cy = width / 2, height / 2
    return min(
        range(len(boxes)),
        key=lambda i: (
            ((boxes[i].x1 + boxes[i].x2) / 2 - cx) ** 2
            + ((boxes[i].y1 + boxes[i].y2) / 2 - cy) ** 2
        ),
    )


class ProductPipeline:
    """The face library as the kiosk and cloud run it: detector keypoints -> chip -> ONNX."""

    name = "storesight"

    def __init__(self, *, detector_range: str = "short", flip_average: bool = False) -> None:
        from facelib.analyzer import FaceAnalyzer
        from facelib.config import DetectorSettings, FaceLibSettings
        from facelib.embedder import FaceEmbedder
        from models.store import ModelStore

        settings = FaceLibSettings(
            detector=DetectorSettings.model_validate({"range": detector_range}),
            estimate_age_gender=False,
            embed=False,  # this pipeline runs its own embedder, with its own flip setting
        )
        store = ModelStore()
        self._analyzer = FaceAnalyzer(settings, store)
        self._embedder = FaceEmbedder(store, settings.runtime, flip_average=flip_average)
        self.name = (
            f"storesight ({detector_range}-range{', flip-averaged' if flip_average else ''})"
        )

    def chip(self, image: RGBImage) -> RGBImage | None:
        detections: list[Detection] = self._analyzer.detect(image)
        if not detections:
            return None
        best = detections[central([d.box for d in detections], image.shape[1], image.shape[0])]
        return align(image, best.landmarks, *EMBEDDING_CHIP)

    def embed(self, chips: Sequence[RGBImage]) -> NDArray[np.float32]:
        return self._embedder.embed(chips)

    def close(self) -> None:
        self._analyzer.close()


class DlibPipeline:
    """dlib's own pipeline (HOG detector, 5-point model, this network), one pass per image.

    The reference the product is measured against; needs the dev-only dlib-bin package.
    """

    name = "dlib (HOG + 5-point + ResNet)"

    def __init__(self) -> None:
        import dlib

        from models.store import ModelStore

        store = ModelStore()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(store.path("shape_predictor_5")))
        self._net = dlib.face_recognition_model_v1(str(store.path("dlib_resnet_source")))

    def chip(self, image: RGBImage) -> RGBImage | None:
        found = self._detector(image, 1)
        if len(found) == 0:
            return None
        boxes = [Box(r.left(), r.top(), r.right(), r.bottom()) for r in found]
        face = found[central(boxes, image.shape[1], image.shape[0])]
        shape = self._predictor(image, face)
        return np.asarray(self._dlib.get_face_chip(image, shape, size=150, padding=0.25))

    def embed(self, chips: Sequence[RGBImage]) -> NDArray[np.float32]:
        rows = [np.asarray(self._net.compute_face_descriptor(c), dtype=np.float32) for c in chips]
        return np.stack(rows) if rows else np.zeros((0, 128), dtype=np.float32)

    def close(self) -> None:
        pass


def create_pipeline(name: str, *, detector_range: str = "short", flip: bool = False) -> Pipeline:
    if name == "dlib":
        return DlibPipeline()
    if name == "storesight":
        return ProductPipeline(detector_range=detector_range, flip_average=flip)
    raise ValueError(f"unknown pipeline {name!r} (choose storesight or dlib)")


def encode_images(
    pipeline: Pipeline, paths: Iterable[Path], *, batch: int = 32, desc: str = "faces"
) -> dict[Path, Descriptor | None]:
    """Descriptor per photo (None where no face was found), with a progress bar."""
    todo = list(dict.fromkeys(paths))
    result: dict[Path, Descriptor | None] = {}
    pending: list[tuple[Path, RGBImage]] = []

    def flush() -> None:
        if pending:
            vectors = pipeline.embed([chip for _, chip in pending])
            result.update({path: vectors[i] for i, (path, _) in enumerate(pending)})
            pending.clear()

    for path in tqdm(todo, desc=desc, unit="photo"):
        chip = pipeline.chip(read_rgb(path))
        if chip is None:
            result[path] = None
            continue
        pending.append((path, chip))
        if len(pending) >= batch:
            flush()
    flush()
    return result
