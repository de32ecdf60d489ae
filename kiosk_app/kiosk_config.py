"""The kiosk's one configuration, `KioskConfig`, and the machine's file that holds it.

`KioskConfig` is everything a till or entrance PC is configured with: what the settings dialog
edits (camera, mode, cloud and key, store, counter zone, detector range and thresholds,
binding window, receipts port, data folder), and the advanced parts no dialog shows (detector
backend and tile size, tracker, best shots, queue, onnxruntime threads, the POS export folder).
The pipeline's part is `PipelineSettings` (which it extends); the service and the windows take
the whole. It is loaded in one place, `kiosk_app.config_loader.load_kiosk_config`: defaults <
this file < the environment < the command line.

The file: ``$STORESIGHT_KIOSK_CONFIG`` if set, else ``%APPDATA%\\StoreSight\\kiosk.json`` on
Windows, else ``$XDG_CONFIG_HOME/storesight/kiosk.json`` (``~/.config/...``). It is written
atomically (a temporary file renamed over the old one), so a crash or a full disk never leaves
half a file; a file that does not parse or validate is reported naming the file and the field,
and is never overwritten until the user saves new settings. Files written before the detector
and shot settings were nested (``detector_range``, ``tile``, ``min_detection_score``,
``min_shot_quality`` at the top) still load: see `LEGACY_KEYS`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from kiosk_app.settings import DEFAULT_COUNTER_ZONE, PipelineSettings
from storesight_common.files import write_atomic
from storesight_common.validation import problems

CONFIG_ENV = "STORESIGHT_KIOSK_CONFIG"
#: where `storesight-cloud serve` listens by default (its STORESIGHT_CLOUD_HOST and _PORT)
DEFAULT_CLOUD_URL = "http://127.0.0.1:8700"
DEFAULT_ZONE = DEFAULT_COUNTER_ZONE
#: top-level keys of older files, and where each setting is now
LEGACY_KEYS: dict[str, tuple[str, str]] = {
    "detector_range": ("detector", "range"),
    "tile": ("detector", "tile"),
    "min_detection_score": ("detector", "min_score"),
    "min_shot_quality": ("shots", "min_quality"),
}


class ConfigFileError(ValueError):
    """The configuration file exists but cannot be used; the message names file and field."""


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the keys of older files moved to where they are now (a nested setting
    already there wins)."""
    if not LEGACY_KEYS.keys() & data.keys():
        return data
    data = dict(data)
    for key, (section, field) in LEGACY_KEYS.items():
        if key in data:
            value = data.pop(key)
            nested = data.get(section)
            nested = dict(nested) if isinstance(nested, dict) else {}
            nested.setdefault(field, value)
            data[section] = nested
    return data


class KioskConfig(PipelineSettings):
    """Everything a till or entrance PC is configured with (see the module docstring)."""

    source: str = Field("0", min_length=1, description="camera index, stream URL, video, folder")
    cloud_url: str = Field(DEFAULT_CLOUD_URL, pattern=r"^https?://\S+$")
    api_key: str = ""
    device: str = Field("till-1", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    #: filled in from the cloud (`GET /v1/device`) when the connection is tested
    store_id: int | None = Field(None, ge=1)
    store_name: str = ""
    binding_window_s: float = Field(
        10.0, ge=1.0, le=120.0, description="how far before a receipt its customer is looked for"
    )
    binding_grace_s: float = Field(
        0.0, ge=0.0, le=30.0, description="how long after a receipt the counter is still watched"
    )
    receipts_port: int = Field(8710, ge=0, le=65535)
    receipts_folder: Path | None = Field(
        None, description="a folder the POS exports receipt files to (watched when set)"
    )
    data_dir: Path = Field(default_factory=lambda: default_data_dir())

    @model_validator(mode="before")
    @classmethod
    def _older_files(cls, data: Any) -> Any:
        return upgraded(data) if isinstance(data, dict) else data

    def pipeline_settings(self) -> PipelineSettings:
        """The face pipeline's part of this configuration."""
        return PipelineSettings.model_validate(
            {name: getattr(self, name) for name in PipelineSettings.model_fields}
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


def load_config(path: Path | None = None) -> KioskConfig | None:
    """The saved configuration, or None when there is none yet (first start)."""
    path = path or config_path()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigFileError(f"cannot read the kiosk configuration {path}: {error}") from error
    try:
        return KioskConfig.model_validate(json.loads(raw))
    except json.JSONDecodeError as error:
        raise ConfigFileError(
            f"the kiosk configuration {path} is not JSON (line {error.lineno}: {error.msg})"
        ) from error
    except ValidationError as error:
        described = "; ".join(problems(error, whole="file"))
        raise ConfigFileError(f"the kiosk configuration {path} is invalid: {described}") from error


def save_config(config: KioskConfig, path: Path | None = None) -> Path:
    """Write atomically; the previous file stays intact if anything fails."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config.model_dump_json(indent=2) + "\n"
    owner_only = None if sys.platform == "win32" else 0o600  # it holds the device's API key
    write_atomic(path, text.encode("utf-8"), mode=owner_only)
    return path
