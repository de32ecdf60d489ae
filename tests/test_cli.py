"""The console commands, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from models.store import ModelStore
from tests.conftest import require


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300
    )


def test_models_verify_passes(store: ModelStore) -> None:
    result = _run("models.cli", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(store.manifest.models)


def test_models_verify_checks_only_the_models_named(store: ModelStore, tmp_path: Path) -> None:
    result = _run("models.cli", "verify", "age", "gender")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["ok", "age"],
        ["ok", "gender"],
    ]
    (tmp_path / "age-v1.onnx").write_bytes(store.path("age").read_bytes())
    partial = _run("models.cli", "--dir", str(tmp_path), "verify", "age", "gender")
    assert partial.returncode == 1  # a directory with only the age model
    assert partial.stdout.startswith("ok       age")
    assert "FAILED   gender" in partial.stdout and "is missing" in partial.stdout


def test_eval_agegender_writes_the_agreed_keys(
    data_dir: Path, tmp_path: Path, store: ModelStore
) -> None:
    folder = require(data_dir / "agegender" / "utkface")
    out = tmp_path / "out.json"
    result = _run(
        "evaluation.cli",
        "agegender",
        "--labels",
        str(folder / "labels.csv"),
        "--images",
        str(folder),
        "--limit",
        "25",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"n", "not_found", "age_mae", "age_mae_18_70", "gender_accuracy"}
    assert figures["n"] == 25
    assert "age_mae" in result.stdout  # the table


def test_eval_reports_a_missing_labels_file(tmp_path: Path) -> None:
    result = _run(
        "evaluation.cli",
        "agegender",
        "--labels",
        str(tmp_path / "nope.csv"),
        "--images",
        str(tmp_path),
    )
    assert result.returncode == 1
    assert "labels file not found" in result.stderr


def test_kiosk_analyze_prints_faces(data_dir: Path, store: ModelStore) -> None:
    photo = require(data_dir / "group" / "face_recognition_two_people.jpg")
    result = _run("kiosk_app.cli", "analyze", str(photo), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 2
    assert all(r["gender"]["label"] in ("female", "male") for r in records)
    assert all(0 < r["age"]["years"] < 100 for r in records)
