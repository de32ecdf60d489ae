"""Cloud service settings: strict, read from STORESIGHT_CLOUD_* variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.recognition.settings import EngineSettings
from facelib.config import RuntimeSettings

DEFAULT_DATA_DIR = Path("var/cloud")


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORESIGHT_CLOUD_", env_nested_delimiter="__", extra="forbid"
    )

    mode: Literal["cloud", "store"] = Field(
        "cloud",
        description="'cloud': the chain's service; 'store': a store server on a store PC, for "
        "the one store `store_code`, keeping faces and receipts there and sending head office "
        "only aggregates (README, In-store mode)",
    )
    store_code: str | None = Field(
        None, max_length=32, description="the store a store server serves (mode = 'store')"
    )
    upstream_url: str | None = Field(
        None,
        max_length=2000,
        description="head office's API base URL, where a store server sends its aggregates "
        "(unset: they wait in the outbox)",
    )
    upstream_key: SecretStr | None = Field(
        None, description="the store's store_server key at head office"
    )
    upstream_interval_s: float = Field(
        30.0, gt=0.0, le=86400.0, description="how often a store server sends what changed"
    )
    database_url: str = Field(
        f"sqlite:///{DEFAULT_DATA_DIR / 'storesight.db'}",
        description="SQLAlchemy URL; e.g. postgresql://user@127.0.0.1:5432/storesight",
    )
    index_dir: Path = Field(
        DEFAULT_DATA_DIR / "index",
        description="where the recognition index versions are published and mapped from: one "
        "directory per machine, shared by its API processes and indexer",
    )
    index_builder: Literal["serve", "indexer"] = Field(
        "serve",
        description="who builds the index versions in index_dir: 'serve', the first API "
        "process to take the directory's build lock (another takes over when it stops); "
        "'indexer', only `storesight-cloud indexer` (API processes then only map versions)",
    )
    index_check_interval_s: float = Field(
        1.0,
        gt=0.0,
        le=60.0,
        description="how often each process looks for a newer index version to map (and, "
        "with index_builder=serve, whether the build lock is free)",
    )
    index_keep_on_stop: bool = Field(
        False,
        description="keep the index versions when the last process using index_dir stops "
        "cleanly, so that the next start maps them instead of rebuilding; off by default "
        "because they hold face descriptors",
    )
    database_connect_timeout_s: float = Field(
        5.0, gt=0.0, le=300.0, description="give up connecting to PostgreSQL after this long"
    )
    database_statement_timeout_s: float = Field(
        60.0,
        gt=0.0,
        le=3600.0,
        description="PostgreSQL cancels a statement running longer; SQLite waits this long "
        "for a lock (busy timeout)",
    )
    auto_migrate: bool = Field(
        True, description="upgrade the database schema at start (the embedded default needs it)"
    )
    host: str = "127.0.0.1"
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes serving the port (`serve`); each maps the index versions "
        "of index_dir and is kept in step with the others through the database",
    )
    port: int = Field(8700, ge=1, le=65535)
    shutdown_grace_s: int = Field(
        20,
        ge=1,
        le=3600,
        description="after SIGTERM (`serve`): how long requests in flight may take to finish "
        "before they are cut; open alert streams end at once. Keep it below the supervisor's "
        "kill timeout (docker stop -t, systemd TimeoutStopSec, Kubernetes' grace period)",
    )
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
    engine: EngineSettings = Field(
        EngineSettings(),
        description="how the recognition engine partitions, indexes and searches descriptors "
        "(STORESIGHT_CLOUD_ENGINE__SEARCH_K=5000, ...)",
    )
    runtime: RuntimeSettings = Field(
        RuntimeSettings(),
        description="onnxruntime threads of the API's age and gender networks "
        "(STORESIGHT_CLOUD_RUNTIME__INTRA_OP_THREADS=2, ...)",
    )
    min_embedding_quality: float = Field(
        0.02, ge=0.0, le=1.0, description="embeddings below this quality are not enrolled"
    )
    max_samples_per_customer: int = Field(20, ge=1, le=200)
    sync_interval_s: float = Field(
        0.25,
        gt=0.0,
        le=5.0,
        description="how often each process reads other processes' samples and deletions "
        "(polling); with the change feed listening, at most this often when notified",
    )
    rebuild_interval_s: float = Field(
        60.0,
        gt=0.0,
        description="the longest new samples wait before the builder publishes an index "
        "version with them (sooner after a deletion or when rebuild_buffer_limit is reached)",
    )
    anonymous_retention_days: int = Field(
        90, ge=1, description="anonymous customers unseen this long are deleted with their faces"
    )
    alert_poll_interval_s: float = Field(
        0.5,
        gt=0.0,
        le=10.0,
        description="how often each process reads new alerts for all of its open staff "
        "streams at once (polling); with the change feed listening, at most this often "
        "when notified",
    )
    change_feed: bool = Field(
        True,
        description="PostgreSQL: one LISTEN connection per process; NOTIFY (sent by every "
        "writer of samples, deletions, alerts and device revocations) wakes index syncing "
        "and the alert streams, which then poll only every change_feed_safety_poll_s. "
        "SQLite, or off: polling only",
    )
    change_feed_safety_poll_s: float = Field(
        10.0,
        gt=0.0,
        le=3600.0,
        description="while the change feed listens, index syncing and the alert streams "
        "still read the database this often (while its connection is lost: at their own "
        "poll intervals, until it is back)",
    )
    session_hours: float = Field(
        12.0, gt=0.0, le=24.0 * 30, description="how long a dashboard sign-in lasts"
    )
    staff_session_hours: float = Field(
        24.0 * 30,
        gt=0.0,
        le=24.0 * 90,
        description="how long a store_staff sign-in lasts (the staff app on a shop phone or "
        "tablet stays signed in; `admin revoke-sessions` or `disable-user` ends it at once)",
    )
    staff_list_hours: int = Field(
        12,
        ge=1,
        le=48,
        description="the staff app lists the arrivals of the last this many hours",
    )
    staff_alert_retention_hours: int = Field(
        24,
        ge=1,
        le=24 * 7,
        description="arrival alerts (face crops included) and their greetings are deleted "
        "after this many hours; at least staff_list_hours",
    )
    frequent_visits: int = Field(
        10,
        ge=0,
        le=10_000,
        description="a recognised non-member with at least this many visits is announced to "
        "the staff app as a frequent customer (no photo, no name); 0: never",
    )
    estimate_demographics: bool = Field(True, description="run age/gender on face crops")
    # sign-in limits, kept in memory by each API process (see cloud_api/services/login_limits)
    login_ip_burst: int = Field(
        20, ge=1, le=10_000, description="sign-in attempts one client address may make at once"
    )
    login_ip_per_minute: float = Field(
        10.0, gt=0.0, le=10_000.0, description="sign-in attempts a client address regains a minute"
    )
    login_free_failures: int = Field(
        5, ge=1, le=100, description="wrong passwords for one account before it is delayed"
    )
    login_lockout_base_s: float = Field(
        2.0, gt=0.0, le=3600.0, description="the first delay; it doubles with each failure after"
    )
    login_lockout_max_s: float = Field(
        300.0, gt=0.0, le=3600.0, description="the longest an account is ever delayed"
    )
    https_only: bool = Field(
        False,
        description="served only over HTTPS (e.g. behind a TLS proxy): HSTS and Secure "
        "cookies on every answer, whatever the request's scheme",
    )
    max_timestamp_age_days: float = Field(
        30.0,
        gt=0.0,
        le=3660.0,
        description="a device's timestamps (scanned_at, captured_at) may be at most this old: "
        "a till's outbox replays what it queued while offline",
    )
    max_clock_skew_s: float = Field(
        300.0,
        ge=0.0,
        le=86400.0,
        description="and at most this far ahead of the server's clock",
    )
    max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="the largest request body any endpoint reads (413 above it); the largest "
        "valid checkout (six face crops, 500 line items) is well under the default",
    )

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_from_text(cls, value: Any) -> Any:
        """`EngineSettings` is strict; values read from the environment arrive as text, so a
        mapping is validated in lax mode (bounds and unknown fields are still refused)."""
        if isinstance(value, dict):
            return EngineSettings.model_validate(value, strict=False)
        return value

    @model_validator(mode="after")
    def _store_server_needs_its_store(self) -> CloudSettings:
        if self.mode == "store" and not self.store_code:
            raise ValueError("mode 'store' needs store_code: the store this server serves")
        if self.mode == "cloud" and (self.upstream_url or self.store_code):
            raise ValueError("store_code and upstream_url are for mode 'store' (a store server)")
        if self.upstream_url and self.upstream_key is None:
            raise ValueError("upstream_url needs upstream_key: the store's key at head office")
        return self

    @model_validator(mode="after")
    def _alerts_outlive_the_staff_list(self) -> CloudSettings:
        if self.staff_alert_retention_hours < self.staff_list_hours:
            raise ValueError(
                f"staff_alert_retention_hours ({self.staff_alert_retention_hours}) must be at "
                f"least staff_list_hours ({self.staff_list_hours}): the list shows those alerts"
            )
        return self

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
