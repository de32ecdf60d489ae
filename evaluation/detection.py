"""Detector recall and false detections against dlib's hand-labelled face boxes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facelib.detectors import FaceDetector
from facelib.images import read_rgb
from facelib.types import Box

#: dlib's XML files name images without the prefix the shared data folder gives them.
IMAGE_PREFIX = "dlib_faces_"


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    boxes: list[Box]


@dataclass(frozen=True)
class DetectionReport:
    images: int
    labelled: int  # labelled faces at least `min_width` wide
    matched: int
    detections: int
    false_detections: int  # detections matching no labelled face of any size
    min_width: float
    min_iou: float

    @property
    def recall(self) -> float:
        return self.matched / self.labelled if self.labelled else 0.0

    @property
    def false_per_image(self) -> float:
        return self.false_detections / self.images if self.images else 0.0


def read_dlib_boxes(xml_files: Iterable[Path]) -> list[LabelledImage]:
    images = []
    for xml_file in xml_files:
        root = ET.parse(xml_file).getroot()
        for image in root.iter("image"):
            boxes = [
                Box(
                    float(b.get("left", 0)),
                    float(b.get("top", 0)),
                    float(b.get("left", 0)) + float(b.get("width", 0)),
                    float(b.get("top", 0)) + float(b.get("height", 0)),
                )
                for b in image.iter("box")
                if b.get("ignore", "0") != "1"
            ]
            name = image.get("file", "")
            images.append(LabelledImage(xml_file.parent / f"{IMAGE_PREFIX}{name}", boxes))
    return images


def evaluate(
    detector: FaceDetector,
    images: list[LabelledImage],
    *,
    min_width: float = 40.0,
    min_iou: float = 0.4,
) -> DetectionReport:
    labelled = matched = total = false = 0
    for item in images:
        found = [d.box for d in detector.detect(read_rgb(item.path))]
        total += len(found)
        used: set[int] = set()
        for truth in item.boxes:
            best, best_iou = -1, min_iou
            for index, box in enumerate(found):
                iou = truth.iou(box)
                if index not in used and iou >= best_iou:
                    best, best_iou = index, iou
            if best >= 0:
                used.add(best)
            if truth.width >= min_width:
                labelled += 1
                matched += best >= 0
        # A detection overlapping a labelled face of any size is not false, even if unmatched.
        false += sum(
            1
            for index, box in enumerate(found)
            if index not in used and all(box.iou(t) < 0.1 for t in item.boxes)
        )
    return DetectionReport(len(images), labelled, matched, total, false, min_width, min_iou)
