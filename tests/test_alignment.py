"""Alignment: the similarity maths, and eyes landing where dlib's template puts them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelib.alignment import (
    DLIB_TEMPLATE_5,
    EMBEDDING_CHIP,
    chip_points,
    similarity_transform,
    warp_chip,
)
from facelib.analyzer import FaceAnalyzer, cut_chips
from facelib.images import read_rgb
from models.store import ModelStore
from tests.conftest import require

LFW_SAMPLES = [
    "Aaron_Sorkin/0001.jpg",
    "Abdoulaye_Wade/0001.jpg",
    "Tony_Blair/0001.jpg",
    "Colin_Powell/0001.jpg",
    "Abbas_Kiarostami/0001.jpg",
]


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    transform = similarity_transform(src, dst)
    np.testing.assert_allclose(transform[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(transform[:, 2], shift, atol=1e-9)


def test_degenerate_landmarks_are_refused() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((4, 2)), np.zeros((4, 2)))


def test_warp_chip_downscale_matches_the_direct_warp_on_smooth_content() -> None:
    yy, xx = np.mgrid[0:800, 0:800]
    image = np.stack([xx / 800 * 255, yy / 800 * 255, np.full_like(xx, 128)], -1).astype(np.uint8)
    transform = np.array([[0.1, 0.0, 5.0], [0.0, 0.1, 7.0]])  # 10x reduction: the area path
    chip = warp_chip(image, transform, 64)
    # pixel (u, v) of the chip samples source ((u - 5) / 0.1, (v - 7) / 0.1)
    u, v = 40, 30
    expected = np.array([(u - 5) / 0.1 / 800 * 255, (v - 7) / 0.1 / 800 * 255, 128])
    np.testing.assert_allclose(chip[v, u].astype(float), expected, atol=4)


@pytest.mark.slow
def test_dlib_finds_the_eyes_where_the_template_says(
    data_dir: Path, analyzer: FaceAnalyzer, store: ModelStore
) -> None:
    """dlib's own 5-point predictor, run on our 150px chips, lands near its own template."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin (dev dependency) is the reference")
    predictor = dlib.shape_predictor(str(store.path("shape_predictor_5")))
    size, padding = EMBEDDING_CHIP
    target = chip_points(DLIB_TEMPLATE_5, size, padding)
    errors = []
    for name in LFW_SAMPLES:
        image = read_rgb(require(data_dir / "faces" / "lfw" / name))
        faces = analyzer.detect(image)
        assert faces, f"no face found in {name}"
        face = max(faces, key=lambda f: f.box.area)
        chip = cut_chips(image, face).embedding
        box = dlib.rectangle(
            int(target[:, 0].min() - 20),
            int(target[:, 1].min() - 30),
            int(target[:, 0].max() + 20),
            int(target[:, 1].max() + 40),
        )
        shape = predictor(chip, box)
        found = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)
        errors.append(np.linalg.norm(found[:4] - target[:4], axis=1).mean())
    inter_ocular = np.linalg.norm(target[0] - target[2])
    mean_error = float(np.mean(errors))
    print(f"\nmean eye-corner error {mean_error:.2f} px ({mean_error / inter_ocular:.3f} IOD)")
    assert np.mean(errors) < 0.06 * inter_ocular  # about 4 px on a 150 px chip
    assert max(errors) < 0.12 * inter_ocular


def test_chips_have_the_sizes_the_networks_take(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    image = read_rgb(require(data_dir / "faces" / "lfw" / LFW_SAMPLES[0]))
    faces = analyzer.analyze(image)
    assert faces
    chips = faces[0].chips
    assert chips.embedding.shape == (150, 150, 3)
    assert chips.age.shape == (64, 64, 3)
    assert chips.gender.shape == (32, 32, 3)
    assert chips.embedding.dtype == np.uint8
