"""Shared fixtures: the real model store and the shared public face data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.data_paths import shared_data_dir
from facelib.analyzer import FaceAnalyzer
from facelib.config import DetectorSettings, FaceLibSettings
from models.errors import ModelError
from models.store import ModelStore

# Qt windows render offscreen in tests: no display is needed (`make screenshots` uses Xvfb).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (set STORESIGHT_DATA_DIR)")
    return path


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data missing: {path}")
    return path


@pytest.fixture(scope="session")
def store() -> ModelStore:
    store = ModelStore()
    for name in store.manifest.models:
        try:
            store.path(name)
        except ModelError as error:
            pytest.fail(f"{error} — `make test` fetches models before running the tests")
    return store


@pytest.fixture(scope="session")
def analyzer(store: ModelStore) -> Iterator[FaceAnalyzer]:
    analyzer = FaceAnalyzer(FaceLibSettings(), store)
    yield analyzer
    analyzer.close()


@pytest.fixture(scope="session")
def full_range_analyzer(store: ModelStore) -> Iterator[FaceAnalyzer]:
    settings = FaceLibSettings(detector=DetectorSettings(range="full", tile=True))
    analyzer = FaceAnalyzer(settings, store)
    yield analyzer
    analyzer.close()
