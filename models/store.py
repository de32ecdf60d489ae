"""Resolve a model name to a file on disk that has been checked against the manifest."""

from __future__ import annotations

import sys
from pathlib import Path

from models.checksums import expect_sha256
from models.errors import ModelMissingError
from models.manifest import Manifest, ModelSpec, load_manifest, models_dir


class ModelStore:
    """Verified access to fetched model files. Never downloads anything."""

    def __init__(self, root: Path | None = None, manifest: Manifest | None = None) -> None:
        self.root = root if root is not None else models_dir()
        self.manifest = manifest if manifest is not None else load_manifest()

    def spec(self, name: str) -> ModelSpec:
        return self.manifest.spec(name)

    def location(self, name: str) -> Path:
        """Where the model's file belongs, whether or not it is there."""
        return self.root / self.spec(name).file

    def path(self, name: str) -> Path:
        """The model's file, after checking it exists and matches its sha256."""
        spec = self.spec(name)
        path = self.root / spec.file
        if not path.is_file():
            raise ModelMissingError(
                f"model {name!r} is missing: {path} does not exist (from {spec.origin}); {remedy()}"
            )
        verify_file(name, spec, path)
        return path


def remedy(*, corrupt: bool = False) -> str:
    """What to do about a missing or corrupt model file: the packaged kiosk carries its
    models (reinstall it); a source tree fetches them."""
    if getattr(sys, "frozen", False):
        return "reinstall the StoreSight kiosk package to restore it"
    return (
        "delete it and run `storesight-models fetch`"
        if corrupt
        else "run `storesight-models fetch`"
    )


def verify_file(name: str, spec: ModelSpec, path: Path) -> None:
    expect_sha256(
        path,
        spec.sha256,
        lambda actual: (
            f"model {name!r} at {path} is corrupt: sha256 {actual} but the manifest says "
            f"{spec.sha256} (from {spec.origin}); {remedy(corrupt=True)}"
        ),
    )
