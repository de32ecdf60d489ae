"""Search large images tile by tile, so small faces reach the detector at a usable size.

BlazeFace squeezes the whole image into 128 or 192 pixels; in a group photo a 40-pixel face
becomes a few pixels wide. Running the detector on overlapping tiles as well as on the whole
image, then merging duplicates, finds those faces at the cost of a few more inferences.
"""

from __future__ import annotations

import numpy as np

from facelib.detectors.base import FaceDetector
from facelib.types import Box, Detection, RGBImage

_OVERLAP = 0.25
_DUPLICATE_IOU = 0.3
_DUPLICATE_CONTAINMENT = 0.6


class TiledDetector:
    def __init__(self, inner: FaceDetector, *, tile_size: int) -> None:
        self._inner = inner
        self._tile = tile_size
        self.name = f"{inner.name}+tiles{tile_size}"

    def detect(self, image: RGBImage) -> list[Detection]:
        found = list(self._inner.detect(image))
        height, width = image.shape[:2]
        for y0, x0 in tile_origins(height, width, self._tile):
            tile = np.ascontiguousarray(image[y0 : y0 + self._tile, x0 : x0 + self._tile])
            found.extend(_shifted(d, x0, y0) for d in self._inner.detect(tile))
        return merge_duplicates(found)

    def close(self) -> None:
        self._inner.close()


def tile_origins(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    """Top-left corners of overlapping tiles covering the image; none when it fits in one."""
    if height <= tile and width <= tile:
        return []
    step = max(1, int(tile * (1 - _OVERLAP)))

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        points = list(range(0, length - tile, step))
        points.append(length - tile)
        return points

    return [(y, x) for y in starts(height) for x in starts(width)]


def merge_duplicates(detections: list[Detection]) -> list[Detection]:
    """Greedy non-maximum suppression that also drops boxes mostly inside a stronger one."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: d.score, reverse=True):
        if not any(_same_face(det.box, other.box) for other in kept):
            kept.append(det)
    return kept


def _same_face(a: Box, b: Box) -> bool:
    if a.iou(b) > _DUPLICATE_IOU:
        return True
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    smaller = min(a.area, b.area)
    return smaller > 0 and ix * iy / smaller > _DUPLICATE_CONTAINMENT


def _shifted(det: Detection, dx: int, dy: int) -> Detection:
    offset = np.array([dx, dy], dtype=np.float32)
    box = Box(det.box.x1 + dx, det.box.y1 + dy, det.box.x2 + dx, det.box.y2 + dy)
    return Detection(
        box=box,
        score=det.score,
        landmarks=det.landmarks + offset,
        raw_keypoints=det.raw_keypoints + offset,
        detector=det.detector,
    )
