"""Settings are strict: typos and out-of-range values fail at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from facelib.config import DetectorSettings, FaceLibSettings


def test_environment_selects_the_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TYPE", "yunet")
    monkeypatch.setenv("STORESIGHT_FACE_RUNTIME__INTRA_OP_THREADS", "2")
    settings = FaceLibSettings()
    assert settings.detector.type == "yunet"
    assert settings.runtime.intra_op_threads == 2


def test_unknown_detector_is_an_error() -> None:
    with pytest.raises(ValidationError, match="type"):
        DetectorSettings(type="retinaface")


def test_misspelt_key_is_an_error() -> None:
    with pytest.raises(ValidationError, match="min_scor"):
        DetectorSettings.model_validate({"min_scor": 0.4})


def test_threshold_out_of_bounds_is_an_error() -> None:
    with pytest.raises(ValidationError, match="min_score"):
        DetectorSettings(min_score=1.5)
