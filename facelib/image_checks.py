"""Validation of the numpy images handed to the face library."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelib.errors import InvalidImageError

#: 40 megapixels: a 4K frame is 8.3 MP; anything far beyond it is a mistake or an attack.
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 16


def checked_image(image: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """Return `image` as a C-contiguous HxWx3 uint8 array, or raise InvalidImageError saying why."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise InvalidImageError(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise InvalidImageError(f"image dtype must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(
            f"image must have 3 colour channels (H x W x 3), got shape {image.shape}"
        )
    height, width = image.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InvalidImageError(f"image is {width}x{height}; each side must be >= {MIN_SIDE} px")
    if height * width > max_pixels:
        raise InvalidImageError(
            f"image is {width}x{height} = {height * width} pixels, more than the limit "
            f"of {max_pixels}; resize it first"
        )
    return np.ascontiguousarray(image)
