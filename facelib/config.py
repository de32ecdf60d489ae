"""Face-library settings: strict, bounded, and read from STORESIGHT_FACE_* variables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from facelib.image_checks import DEFAULT_MAX_PIXELS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorSettings(_Strict):
    type: Literal["mediapipe", "yunet"] = Field(
        "mediapipe", description="detector backend (a plugin chosen by name)"
    )
    range: Literal["short", "full"] = Field(
        "short", description="MediaPipe model: short (till, < 2 m) or full (entrance, < 5 m)"
    )
    min_score: float = Field(0.5, ge=0.05, le=0.99, description="minimum detection confidence")
    tile: bool = Field(
        False,
        description="also search overlapping tiles of large images, for small faces in photos",
    )
    tile_size: int = Field(256, ge=96, le=2048, description="tile side in pixels when tiling is on")


class RuntimeSettings(_Strict):
    """onnxruntime threading, set in one place for every session."""

    intra_op_threads: int = Field(1, ge=1, le=64)
    inter_op_threads: int = Field(1, ge=1, le=64)


class RecognitionSettings(_Strict):
    """How descriptors are made and compared (Euclidean distance between dlib descriptors)."""

    match_threshold: float = Field(
        0.612,
        gt=0.0,
        lt=2.0,
        description="same person when the descriptor distance is below this; the default is "
        "what `storesight-eval verify` recommends on the dev LFW pairs",
    )
    identify_threshold: float = Field(
        0.443,
        gt=0.0,
        lt=2.0,
        description="open-set identification (one face against many customers): a match "
        "only below this distance. Stricter than match_threshold because every extra person "
        "enrolled is another chance of a false match; the default is what `storesight-eval "
        "identify` recommends for at most 1% of strangers accepted among 226 LFW people",
    )
    flip_average: bool = Field(
        True,
        description="average each descriptor with its mirror image's: twice the work, "
        "fewer errors on the dev LFW pairs (99.17% against 98.97%)",
    )


class FaceLibSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORESIGHT_FACE_", env_nested_delimiter="__", extra="forbid"
    )

    detector: DetectorSettings = DetectorSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    recognition: RecognitionSettings = RecognitionSettings()
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1_000_000)
    estimate_age_gender: bool = True
    embed: bool = Field(True, description="compute a recognition descriptor for each face")
    warmup: bool = Field(True, description="run each model once at start-up")
