"""Age and gender on real labelled face crops, and the maths of the age expectation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from evaluation.agegender import evaluate, read_labels
from facelib.age_gender import AGE_CLASSES, age_from_probabilities
from facelib.analyzer import FaceAnalyzer
from facelib.types import RGBImage
from tests.conftest import require


def test_age_is_the_expectation_over_classes() -> None:
    one_hot = np.zeros(81)
    one_hot[0] = 1.0
    assert age_from_probabilities(one_hot).years == pytest.approx(0.25)
    two = np.zeros(81)
    two[[20, 40]] = 0.5
    estimate = age_from_probabilities(two)
    assert estimate.years == pytest.approx(30.0)
    assert estimate.std_years == pytest.approx(10.0)
    assert estimate.confidence == pytest.approx(0.0)  # neither class is within 5 years of 30
    assert len(AGE_CLASSES) == 81


def test_batch_equals_one_at_a_time(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    assert analyzer.age is not None and analyzer.gender is not None
    from facelib.images import read_rgb

    folder = require(data_dir / "agegender" / "utkface")
    chips: list[RGBImage] = []
    for item in read_labels(folder / "labels.csv")[:6]:
        faces = analyzer.analyze(read_rgb(folder / item.file))
        chips.extend(f.chips.age for f in faces)
    batch = analyzer.age.estimate(chips)
    single = [analyzer.age.estimate([c])[0] for c in chips]
    for b, s in zip(batch, single, strict=True):
        assert b.years == pytest.approx(s.years, abs=1e-3)


@pytest.mark.slow
def test_age_and_gender_on_real_crops(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    folder = require(data_dir / "agegender" / "utkface")
    labels = random.Random(7).sample(read_labels(folder / "labels.csv"), 300)
    report = evaluate(analyzer, labels, folder, progress=False)
    print(f"\n{report}")
    assert report.not_found <= 0.03 * report.n
    # The networks score about MAE 6 and 85% here; chance would be ~MAE 20 and 55%.
    assert report.age_mae < 8.0
    assert report.gender_accuracy > 0.78


def test_the_cloud_estimator_gives_the_same_answers_from_many_threads(data_dir: Path) -> None:
    """The API runs age/gender on request threads without a lock: answers from 8 threads at
    once equal the ones computed one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from cloud_api.services.demographics import DemographicsEstimator
    from tests.face_samples import face_sample

    people = sorted(p for p in (data_dir / "faces" / "lfw").iterdir() if p.is_dir())[:4]
    crops = [face_sample(sorted(person.glob("*.jpg"))[0]).crop for person in people]
    estimator = DemographicsEstimator()
    alone = [estimator.estimate(crop) for crop in crops]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(estimator.estimate, crops * 16))
    assert together == alone * 16
