"""Reading image files into the RGB arrays the library takes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelib.errors import InvalidImageError
from facelib.types import RGBImage


def read_rgb(path: Path) -> RGBImage:
    if not path.is_file():
        raise InvalidImageError(f"image file not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidImageError(f"not a readable image: {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
