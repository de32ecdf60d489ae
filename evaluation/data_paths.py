"""Where the shared evaluation data lives (read in place, never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "STORESIGHT_DATA_DIR"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The workplace keeps the data at ../shared/data beside the checkout; a clone made elsewhere
#: (a CI scratch directory) still finds the workplace's copy.
_CANDIDATES = (_PROJECT_ROOT.parent / "shared" / "data", Path("/work/shared/data"))


def shared_data_dir() -> Path:
    """$STORESIGHT_DATA_DIR, else ../shared/data beside the project, else the workplace's copy."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured)
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    return _CANDIDATES[0]
