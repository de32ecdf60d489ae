"""What the kiosk's face pipeline is configured with: `PipelineSettings`, a plain model.

It reads no environment: the kiosk's one configuration (`kiosk_app.kiosk_config.KioskConfig`,
which extends it, loaded by `kiosk_app.config_loader`) holds these fields under the same names,
and `KioskConfig.pipeline_settings()` is the pipeline's part of it. Tests and benchmarks that
run the pipeline alone build one directly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from contract import MAX_VISIT_EMBEDDINGS
from facelib.config import DetectorSettings, RecognitionSettings, RuntimeSettings
from facelib.image_checks import DEFAULT_MAX_PIXELS
from kiosk_app.tracking import TrackerSettings

DEFAULT_COUNTER_ZONE: tuple[tuple[float, float], ...] = (
    (0.15, 0.0),
    (0.85, 0.0),
    (0.85, 1.0),
    (0.15, 1.0),
)


def _polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError("the counter zone needs at least three points")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"counter zone point ({x}, {y}) is outside 0..1")
    return points


#: the counter zone as configured: at least three points inside the image (0..1)
CounterZonePolygon = Annotated[list[tuple[float, float]], AfterValidator(_polygon)]


#: Best shots kept per track and sent with its checkout or sighting: the cloud fuses a visit's
#: shots into one descriptor, so more shots help, up to what the contract accepts.
DEFAULT_BEST_SHOTS = 8


class ShotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    best_k: int = Field(
        DEFAULT_BEST_SHOTS,
        ge=1,
        le=MAX_VISIT_EMBEDDINGS,
        description="best shots kept (and embedded, and sent) per track",
    )
    min_quality: float = Field(0.02, ge=0.0, le=1.0, description="shots below are never kept")


def _kiosk_detector() -> DetectorSettings:
    # the face library's detector, at full range: a till camera sees the customer at 1-3 m
    return DetectorSettings(range="full")


class PipelineSettings(BaseModel):
    """The face pipeline's settings. `detector`, `runtime`, `recognition` and
    `max_image_pixels` are the face library's own settings models, under the face library's
    names (so its ``STORESIGHT_FACE_*`` variables can reach them, see `config_loader`)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["till", "entrance"] = "till"
    detector: DetectorSettings = Field(default_factory=_kiosk_detector)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    recognition: RecognitionSettings = Field(
        default_factory=RecognitionSettings,
        description="the kiosk uses its flip_average (how shots are embedded); the cloud matches",
    )
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1_000_000)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    shots: ShotSettings = Field(default_factory=ShotSettings)
    counter_zone: CounterZonePolygon = Field(
        default_factory=lambda: list(DEFAULT_COUNTER_ZONE),
        description="polygon (normalised 0..1 image coordinates) where the paying customer stands",
    )
    queue_size: int = Field(4, ge=1, le=256, description="capture queue length")
