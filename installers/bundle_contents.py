"""What the packaged kiosk must never carry, checked on the built folder (by the build and
by the tests): the cloud's code and its libraries, tests, dlib, development-only model files
and anything from the shared test data."""

from __future__ import annotations

import json
from pathlib import Path

#: top-level names (packages, or a library file's name up to its first dot) never bundled
FORBIDDEN_NAMES = frozenset(
    {
        "cloud_api",
        "tests",
        "evaluation",
        "bench",
        "demo",
        "dlib",
        "_dlib_pybind11",
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "annoy",
        "hnswlib",
        "torch",
        "pytest",
        "schemathesis",
        "hypothesis",
        "playwright",
    }
)
#: the shared test data's folders (faces, LFW, ...) never travel with the product
FORBIDDEN_DATA_FOLDERS = frozenset({"faces", "lfw", "agegender", "group", "video"})


def development_model_files(manifest_path: Path) -> frozenset[str]:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return frozenset(
        spec["file"] for spec in manifest["models"].values() if spec["used_at"] == "development"
    )


def forbidden_files(app: Path) -> list[str]:
    """Every file or folder in the bundle `app` that must not be there (relative paths)."""
    manifest = next(app.rglob("models/manifest.json"), None)
    dev_models = development_model_files(manifest) if manifest is not None else frozenset()
    found = []
    for path in sorted(app.rglob("*")):
        relative = path.relative_to(app)
        parts = relative.parts
        stem = path.name.split(".")[0]
        if (
            any(part in FORBIDDEN_NAMES for part in parts[:-1])
            or stem in FORBIDDEN_NAMES
            or path.name in dev_models
            or any(part in FORBIDDEN_DATA_FOLDERS for part in parts[:-1] if part != "modules")
        ):
            found.append(str(relative))
    return found
