"""Bad images get clear errors, at the library's front door."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.analyzer import FaceAnalyzer
from facelib.errors import InvalidImageError
from facelib.image_checks import checked_image


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ([[1, 2, 3]], "must be a numpy array, got list"),
        (np.zeros((0, 10, 3), np.uint8), "image is empty"),
        (np.zeros((64, 64, 3), np.float32), "dtype must be uint8, got float32"),
        (np.zeros((64, 64), np.uint8), "3 colour channels"),
        (np.zeros((64, 64, 4), np.uint8), r"3 colour channels .* \(64, 64, 4\)"),
        (np.zeros((8, 64, 3), np.uint8), "each side must be >= 16"),
    ],
)
def test_bad_images_are_named(image: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        checked_image(image)


def test_huge_image_is_refused_before_any_work() -> None:
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (8000, 6000, 3))
    with pytest.raises(InvalidImageError, match="48000000 pixels, more than the limit"):
        checked_image(huge)


def test_non_contiguous_views_are_accepted() -> None:
    image = np.zeros((64, 128, 3), np.uint8)[:, ::2]
    assert checked_image(image).flags.c_contiguous


def test_analyzer_rejects_bad_images(analyzer: FaceAnalyzer) -> None:
    with pytest.raises(InvalidImageError, match="dtype"):
        analyzer.analyze(np.zeros((64, 64, 3), np.int16))
