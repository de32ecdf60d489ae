"""The per-machine kiosk configuration: one JSON file the settings dialog writes.

Where it lives: ``$STORESIGHT_KIOSK_CONFIG`` if set, else ``%APPDATA%\\StoreSight\\kiosk.json``
on Windows, else ``$XDG_CONFIG_HOME/storesight/kiosk.json`` (``~/.config/...``). It is written
atomically (a temporary file renamed over the old one), so a crash or a full disk never leaves
half a file; a file that does not parse or validate is reported naming the file and the field,
and is never overwritten until the user saves new settings.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facelib.config import FaceLibSettings
from kiosk_app.settings import (
    DEFAULT_COUNTER_ZONE,
    CounterZonePolygon,
    KioskSettings,
    ShotSettings,
)
from storesight_common.files import write_atomic
from storesight_common.validation import problems

CONFIG_ENV = "STORESIGHT_KIOSK_CONFIG"
#: where `storesight-cloud serve` listens by default (its STORESIGHT_CLOUD_HOST and _PORT)
DEFAULT_CLOUD_URL = "http://127.0.0.1:8700"
DEFAULT_ZONE = DEFAULT_COUNTER_ZONE


class ConfigFileError(ValueError):
    """The configuration file exists but cannot be used; the message names file and field."""


class MachineConfig(BaseModel):
    """Everything a till or entrance PC needs, as the settings dialog edits it."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("0", min_length=1, description="camera index, stream URL, video, folder")
    mode: Literal["till", "entrance"] = "till"
    cloud_url: str = Field(DEFAULT_CLOUD_URL, pattern=r"^https?://\S+$")
    api_key: str = ""
    device: str = Field("till-1", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    #: filled in from the cloud (`GET /v1/device`) when the connection is tested
    store_id: int | None = Field(None, ge=1)
    store_name: str = ""
    counter_zone: CounterZonePolygon = Field(default_factory=lambda: list(DEFAULT_ZONE))
    detector_range: Literal["short", "full"] = "full"
    tile: bool = Field(False, description="also search tiles of the frame for small faces")
    min_detection_score: float = Field(0.5, ge=0.05, le=0.99)
    min_shot_quality: float = Field(0.02, ge=0.0, le=1.0)
    binding_window_s: float = Field(10.0, ge=1.0, le=120.0)
    receipts_port: int = Field(8710, ge=0, le=65535)
    data_dir: Path = Field(default_factory=lambda: default_data_dir())

    def kiosk_settings(self) -> KioskSettings:
        base = KioskSettings()
        face = FaceLibSettings(estimate_age_gender=False, embed=False)  # STORESIGHT_FACE_*
        detector = face.detector.model_copy(  # the backend and tile size stay the environment's
            update={
                "range": self.detector_range,
                "tile": self.tile,
                "min_score": self.min_detection_score,
            }
        )
        face = face.model_copy(update={"detector": detector})
        return base.model_copy(
            update={
                "mode": self.mode,
                "face": face,
                "counter_zone": list(self.counter_zone),
                "shots": ShotSettings(best_k=base.shots.best_k, min_quality=self.min_shot_quality),
            }
        )


def _config_home() -> Path:
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "StoreSight"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "storesight"


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    return Path(explicit) if explicit else _config_home() / "kiosk.json"


def default_data_dir() -> Path:
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "StoreSight" / "kiosk"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "storesight" / "kiosk"


def load_config(path: Path | None = None) -> MachineConfig | None:
    """The saved configuration, or None when there is none yet (first start)."""
    path = path or config_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigFileError(f"cannot read the kiosk configuration {path}: {error}") from error
    try:
        return MachineConfig.model_validate(json.loads(raw))
    except json.JSONDecodeError as error:
        raise ConfigFileError(
            f"the kiosk configuration {path} is not JSON (line {error.lineno}: {error.msg})"
        ) from error
    except ValidationError as error:
        described = "; ".join(problems(error, whole="file"))
        raise ConfigFileError(f"the kiosk configuration {path} is invalid: {described}") from error


def save_config(config: MachineConfig, path: Path | None = None) -> Path:
    """Write atomically; the previous file stays intact if anything fails."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config.model_dump_json(indent=2) + "\n"
    owner_only = None if sys.platform == "win32" else 0o600  # it holds the device's API key
    write_atomic(path, text.encode("utf-8"), mode=owner_only)
    return path
