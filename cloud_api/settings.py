"""Cloud service settings: strict, read from STORESIGHT_CLOUD_* variables."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_api.recognition.policy import DecisionPolicy

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
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes serving the port (`serve`); each has its own recogniser, "
        "kept in step with the others through the database",
    )
    port: int = Field(8700, ge=1, le=65535)
    recognition: DecisionPolicy = Field(
        DecisionPolicy(),
        description="open-set decisions: targets, the threshold curve, margin, age limit "
        "(STORESIGHT_CLOUD_RECOGNITION__MEMBER_FPIR=0.001, ...)",
    )
    recognition_file: Path | None = Field(
        None,
        description="a JSON file of decision policy fields (what `storesight-eval openset "
        "--fit` writes) laid over `recognition`",
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

    def decision_policy(self) -> DecisionPolicy:
        """`recognition`, with `recognition_file`'s fields over it when one is set."""
        if self.recognition_file is None:
            return self.recognition
        try:
            fields = json.loads(self.recognition_file.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(
                f"recognition_file {self.recognition_file} cannot be read as JSON: {error}"
            ) from error
        if not isinstance(fields, dict):
            raise ValueError(f"recognition_file {self.recognition_file} must hold a JSON object")
        return self.recognition.with_overrides(fields)
