"""Kiosk settings: strict, read from STORESIGHT_KIOSK_* variables (nested with `__`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract import MAX_VISIT_EMBEDDINGS
from facelib.config import FaceLibSettings
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


class KioskSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORESIGHT_KIOSK_", env_nested_delimiter="__", extra="forbid"
    )

    mode: Literal["till", "entrance"] = "till"
    face: FaceLibSettings = Field(
        default_factory=lambda: FaceLibSettings(estimate_age_gender=False, embed=False)
    )
    tracker: TrackerSettings = TrackerSettings()
    shots: ShotSettings = ShotSettings()
    counter_zone: CounterZonePolygon = Field(
        default_factory=lambda: list(DEFAULT_COUNTER_ZONE),
        description="polygon (normalised 0..1 image coordinates) where the paying customer stands",
    )
    queue_size: int = Field(4, ge=1, le=256, description="capture queue length")
