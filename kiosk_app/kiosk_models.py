"""The models the kiosk runs with: the face detectors its settings choose between, and the
embedder. Age and gender are estimated by the cloud, never on the till, so the kiosk package
carries only these (`installers/build.py`) and `selftest` checks only these."""

from __future__ import annotations

KIOSK_MODELS = ("blazeface_short_range", "blazeface_full_range", "yunet", "embedder")
#: only `storesight-kiosk analyze` uses them, where they are installed (a source tree)
AGE_GENDER_MODELS = ("age", "gender")
