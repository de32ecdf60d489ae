"""Face embeddings: dlib's ResNet, converted to ONNX, on aligned 150x150 chips.

Descriptors are dlib's own 128-d vectors (not normalised); two faces are the same person when
the Euclidean distance between their descriptors is below a threshold (dlib uses 0.6; our
measured recommendation is `RecognitionSettings.match_threshold`). Optionally each chip is also
embedded mirrored and the two descriptors averaged, which makes the result less sensitive to
which way the head is turned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from facelib.config import RuntimeSettings
from facelib.onnx_sessions import create_session
from facelib.types import RGBImage
from models.store import ModelStore

MODEL_NAME = "embedder"
CHIP_SIZE = 150
DIMENSION = 128

Descriptors = NDArray[np.float32]


class FaceEmbedder:
    """Batched descriptors for aligned chips. Not thread-safe: one per worker thread."""

    def __init__(
        self,
        store: ModelStore,
        runtime: RuntimeSettings,
        *,
        batch_size: int = 8,
        flip_average: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._session = create_session(store.path(MODEL_NAME), runtime, name=MODEL_NAME)
        self._input = self._session.get_inputs()[0].name
        self.batch_size = batch_size
        self.flip_average = flip_average

    def embed(self, chips: Sequence[RGBImage] | NDArray[np.uint8]) -> Descriptors:
        """(N, 128) float32 descriptors for N aligned 150x150 RGB uint8 chips."""
        batch = _as_batch(chips)
        if batch.shape[0] == 0:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        descriptors = self._run(batch)
        if self.flip_average:
            mirrored = self._run(np.ascontiguousarray(batch[:, :, ::-1, :]))
            descriptors = ((descriptors + mirrored) / 2).astype(np.float32)
        return descriptors

    def _run(self, batch: NDArray[np.uint8]) -> Descriptors:
        parts = [
            np.asarray(
                self._session.run(None, {self._input: batch[i : i + self.batch_size]})[0],
                dtype=np.float32,
            )
            for i in range(0, batch.shape[0], self.batch_size)
        ]
        return np.concatenate(parts)

    def warmup(self) -> None:
        self.embed(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8))


def _as_batch(chips: Sequence[RGBImage] | NDArray[np.uint8]) -> NDArray[np.uint8]:
    if isinstance(chips, np.ndarray):
        batch = chips
    elif len(chips) == 0:
        return np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    else:
        batch = np.stack(list(chips))
    if batch.ndim != 4 or batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(
            f"chips must be aligned {CHIP_SIZE}x{CHIP_SIZE}x3 RGB images, got shape {batch.shape}"
        )
    if batch.dtype != np.uint8:
        raise ValueError(f"chips must be uint8, got {batch.dtype}")
    return np.ascontiguousarray(batch)


def distances(query: NDArray[np.float32], gallery: NDArray[np.float32]) -> NDArray[np.float32]:
    """Euclidean distance from one descriptor (128,) to each row of `gallery` (M, 128)."""
    return np.asarray(np.linalg.norm(gallery - query[None, :], axis=1), dtype=np.float32)
