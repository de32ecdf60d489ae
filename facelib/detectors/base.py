"""The detector port: what every face detector backend (and wrapper) provides."""

from __future__ import annotations

from typing import Protocol

from facelib.types import Detection, RGBImage


class FaceDetector(Protocol):
    """Finds faces in an RGB image. Implementations are safe to call from one thread at a time."""

    name: str

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def close(self) -> None: ...
