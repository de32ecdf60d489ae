"""Cloud service settings: strict, read from STORESIGHT_CLOUD_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_api.recognition.policy import DecisionPolicy
from facelib.config import RecognitionSettings

DEFAULT_DATA_DIR = Path("var/cloud")


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORESIGHT_CLOUD_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = Field(
        f"sqlite:///{DEFAULT_DATA_DIR / 'storesight.db'}",
        description="SQLAlchemy URL; e.g. postgresql://user@127.0.0.1:5432/storesight",
    )
    index_dir: Path = Field(
        DEFAULT_DATA_DIR / "index", description="where Annoy index files are written"
    )
    auto_migrate: bool = Field(
        True, description="upgrade the database schema at start (the embedded default needs it)"
    )
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=1, le=65535)
    identify_threshold: float = Field(
        RecognitionSettings().identify_threshold,
        gt=0.0,
        lt=2.0,
        description="open-set decision: a returning customer only below this distance",
    )
    recognition: DecisionPolicy = Field(
        DecisionPolicy(),
        description="open-set decisions: targets, the threshold curve, margin, age limit "
        "(STORESIGHT_CLOUD_RECOGNITION__MEMBER_FPIR=0.001, ...)",
    )
    min_embedding_quality: float = Field(
        0.02, ge=0.0, le=1.0, description="embeddings below this quality are not enrolled"
    )
    max_samples_per_customer: int = Field(20, ge=1, le=200)
    sync_interval_s: float = Field(
        0.25, gt=0.0, le=5.0, description="how often each process reads other processes' samples"
    )
    rebuild_interval_s: float = Field(60.0, gt=0.0, description="background index rebuild period")
    anonymous_retention_days: int = Field(
        90, ge=1, description="anonymous customers unseen this long are deleted with their faces"
    )
    alert_poll_interval_s: float = Field(0.5, gt=0.0, le=10.0)
    session_hours: float = Field(
        12.0, gt=0.0, le=24.0 * 30, description="how long a dashboard sign-in lasts"
    )
    estimate_demographics: bool = Field(True, description="run age/gender on face crops")
