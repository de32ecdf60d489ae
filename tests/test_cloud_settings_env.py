"""Every documented STORESIGHT_CLOUD_* variable nests into CloudSettings and reaches the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import cloud_api.services.demographics as demographics_module
from cloud_api.api.app import start_services
from cloud_api.recognition.settings import EngineSettings
from cloud_api.settings import CloudSettings
from facelib.config import RuntimeSettings

ENGINE_VARIABLES = {
    "STORESIGHT_CLOUD_ENGINE__DIM": ("dim", "64", 64),
    "STORESIGHT_CLOUD_ENGINE__N_TREES": ("n_trees", "7", 7),
    "STORESIGHT_CLOUD_ENGINE__SEARCH_K": ("search_k", "5000", 5000),
    "STORESIGHT_CLOUD_ENGINE__CANDIDATES": ("candidates", "25", 25),
    "STORESIGHT_CLOUD_ENGINE__EXACT_MAX_SIZE": ("exact_max_size", "500", 500),
    "STORESIGHT_CLOUD_ENGINE__REBUILD_BUFFER_LIMIT": ("rebuild_buffer_limit", "900", 900),
    "STORESIGHT_CLOUD_ENGINE__REGION_LEVEL": ("region_level", "index", "index"),
    "STORESIGHT_CLOUD_ENGINE__BUILD_JOBS": ("build_jobs", "-1", -1),
    "STORESIGHT_CLOUD_ENGINE__SEED": ("seed", "7", 7),
    "STORESIGHT_CLOUD_ENGINE__PREFAULT": ("prefault", "true", True),
}
RUNTIME_VARIABLES = {
    "STORESIGHT_CLOUD_RUNTIME__INTRA_OP_THREADS": ("intra_op_threads", "3", 3),
    "STORESIGHT_CLOUD_RUNTIME__INTER_OP_THREADS": ("inter_op_threads", "2", 2),
}


def test_every_engine_field_has_a_variable() -> None:
    assert {field for field, _, _ in ENGINE_VARIABLES.values()} == set(EngineSettings.model_fields)
    assert {field for field, _, _ in RUNTIME_VARIABLES.values()} == set(
        RuntimeSettings.model_fields
    )


def test_engine_and_runtime_variables_take_effect_in_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, (_, text, _) in {**ENGINE_VARIABLES, **RUNTIME_VARIABLES}.items():
        monkeypatch.setenv(name, text)
    monkeypatch.setenv("STORESIGHT_CLOUD_DATABASE_URL", f"sqlite:///{tmp_path / 'cloud.db'}")
    monkeypatch.setenv("STORESIGHT_CLOUD_INDEX_DIR", str(tmp_path / "index"))
    built: list[RuntimeSettings | None] = []

    class RecordingEstimator:  # the real one loads the age and gender networks
        def __init__(self, store: Any = None, runtime: RuntimeSettings | None = None) -> None:
            built.append(runtime)

    monkeypatch.setattr(demographics_module, "DemographicsEstimator", RecordingEstimator)
    services = start_services(CloudSettings())

    engine = services.recognizer.engine.settings
    for field, _, expected in ENGINE_VARIABLES.values():
        assert getattr(engine, field) == expected, field
    assert len(built) == 1 and built[0] is not None
    for field, _, expected in RUNTIME_VARIABLES.values():
        assert getattr(built[0], field) == expected, field


def test_a_bad_engine_variable_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORESIGHT_CLOUD_ENGINE__SEARCH_K", "lots")
    with pytest.raises(ValidationError, match="search_k"):
        CloudSettings()
    monkeypatch.setenv("STORESIGHT_CLOUD_ENGINE__SEARCH_K", "0")
    with pytest.raises(ValidationError, match="search_k"):
        CloudSettings()


def test_engine_settings_stay_strict_in_code() -> None:
    with pytest.raises(ValidationError):
        EngineSettings.model_validate({"search_k": "5000"})
