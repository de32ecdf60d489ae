"""Where the shared evaluation data lives (read in place, never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "STORESIGHT_DATA_DIR"


def shared_data_dir() -> Path:
    """$STORESIGHT_DATA_DIR, else ../shared/data beside the project root."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"
