"""What keeps a till supportable: selftest, one kiosk per machine, a crash log, --version,
and the check that keeps the cloud out of the package. (The package itself is built and
installed by tests/test_package.py, `make package-check`.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_api.settings import CloudSettings
from installers.bundle_contents import forbidden_files
from kiosk_app.build_info import build_info
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.selftest import report, run_selftest
from kiosk_app.single_instance import AlreadyRunning, SingleInstance
from models.store import ModelStore
from tests.cloud_fixtures import (
    migrated_url,  # noqa: F401  (fixture)
    west_harbour_till,
)
from tests.cloud_server import serve
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
KIOSK = [sys.executable, "-m", "kiosk_app.cli"]


@pytest.fixture
def clip(data_dir: Path) -> str:
    return str(require(data_dir / "video" / "facenet-pytorch_video.mp4"))


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(REPO),
        **extra,
    }


# --- selftest -------------------------------------------------------------------------------


def test_selftest_passes_on_a_working_install_and_says_what_it_checked(
    tmp_path: Path, clip: str
) -> None:
    checks = run_selftest(KioskConfig(data_dir=tmp_path), source=clip)
    lines = {c.name: c for c in checks}
    assert all(c.outcome in ("OK", "SKIP") for c in checks), [c.line() for c in checks]
    assert lines["model embedder"].outcome == "OK"
    assert "128-d embedding" in lines["face pipeline"].detail
    assert lines[f"source {clip!r}"].detail.startswith("opened, a 1920x1080 frame")
    assert lines["cloud"].outcome == "SKIP"  # no key configured: nothing to check
    assert lines["outbox"].outcome == "OK"


def test_selftest_names_a_corrupt_model_file_and_fails(tmp_path: Path, clip: str) -> None:
    models = tmp_path / "models"
    shutil.copytree(ModelStore().root, models)
    embedder = models / "dlib_face_recognition_resnet_v1.onnx"
    data = bytearray(embedder.read_bytes())
    data[5000] ^= 0xFF  # one flipped byte
    embedder.write_bytes(bytes(data))
    checks = run_selftest(KioskConfig(data_dir=tmp_path), source=clip, store=ModelStore(models))
    named = {c.name: c for c in checks}
    assert named["model embedder"].outcome == "FAIL"
    assert "dlib_face_recognition_resnet_v1.onnx" in named["model embedder"].detail
    assert "corrupt" in named["model embedder"].detail
    assert named["model yunet"].outcome == "OK"  # the others are checked on their own
    assert named["face pipeline"].outcome == "SKIP"
    lines: list[str] = []

    class Out:
        def write(self, text: str) -> int:
            lines.append(text)
            return len(text)

    assert report(checks, Out()) == 1  # type: ignore[arg-type]
    assert "Traceback" not in "".join(lines)


def test_selftest_fails_clearly_for_a_missing_camera(tmp_path: Path) -> None:
    checks = run_selftest(KioskConfig(data_dir=tmp_path), source="7", source_timeout_s=20)
    (camera,) = [c for c in checks if c.name.startswith("source")]
    assert camera.outcome == "FAIL"
    assert "camera 7" in camera.detail


def test_selftest_fails_clearly_for_a_wrong_api_key(
    tmp_path: Path,
    clip: str,
    migrated_url: str,  # noqa: F811
) -> None:
    key = west_harbour_till(migrated_url)
    settings = CloudSettings(
        database_url=migrated_url, index_dir=tmp_path / "index", auto_migrate=False
    )
    with serve(settings) as server:
        good = run_selftest(
            KioskConfig(data_dir=tmp_path, cloud_url=server.url, api_key=key), source=clip
        )
        wrong = run_selftest(
            KioskConfig(data_dir=tmp_path, cloud_url=server.url, api_key="ssk_wrong.key"),
            source=clip,
        )
    (good_cloud,) = [c for c in good if c.name == "cloud"]
    (wrong_cloud,) = [c for c in wrong if c.name == "cloud"]
    assert good_cloud.outcome == "OK" and "West Harbour" in good_cloud.detail
    assert wrong_cloud.outcome == "FAIL"
    assert "API key was refused" in wrong_cloud.detail


def test_selftest_command_exits_nonzero_with_one_line_per_check(tmp_path: Path, clip: str) -> None:
    result = subprocess.run(
        [*KIOSK, "selftest", "--source", "7"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("storesight-kiosk ")
    assert any(line.startswith("FAIL source '7':") for line in lines)
    assert lines[-1].startswith("selftest: FAILED (1 of ")
    assert "Traceback" not in result.stdout + result.stderr


# --- one kiosk per machine, crash log, version ------------------------------------------------


def test_a_second_kiosk_is_refused_and_a_dead_ones_lock_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from kiosk_app.single_instance import SingleInstance
                lock = SingleInstance(Path({str(tmp_path)!r}))
                lock.start()
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning, match=rf"pid {holder.pid}\b"):
            SingleInstance(tmp_path).start()
    finally:
        holder.kill()  # as a crash or a power cut would
        holder.wait(timeout=10)
    with SingleInstance(tmp_path):  # the OS dropped the dead process's lock
        pass


def test_run_while_another_kiosk_runs_exits_with_its_own_status(tmp_path: Path) -> None:
    environment = _environment(tmp_path)
    with SingleInstance(tmp_path / "data" / "storesight" / "kiosk"):
        result = subprocess.run(
            [*KIOSK, "run", "--headless", "--source", "0"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 3  # the systemd unit's RestartPreventExitStatus
    assert "already running on this machine" in result.stderr


def test_a_crash_is_in_the_rotating_log_file_with_its_traceback(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "kiosk.log"
    script = textwrap.dedent(
        f"""
        import threading
        from pathlib import Path
        import structlog
        from storesight_common.logs import configure_logging, log_crashes, log_to_file
        configure_logging()
        log_to_file(Path({str(log)!r}), max_bytes=4000, backups=2)
        log_crashes()
        for n in range(300):
            structlog.get_logger().info("filler_line", n=n)
        def worker():
            raise RuntimeError("camera thread broke")
        thread = threading.Thread(target=worker, name="capture")
        thread.start(); thread.join()
        raise ValueError("the main thread broke")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    text = log.read_text(encoding="utf-8")
    assert "crashed" in text and "camera thread broke" in text and "thread=capture" in text
    assert "ValueError: the main thread broke" in text and "Traceback" in text
    rotated = sorted(p.name for p in log.parent.iterdir())
    assert rotated == ["kiosk.log", "kiosk.log.1", "kiosk.log.2"]  # bounded: 2 old files kept
    assert all(p.stat().st_size < 12_000 for p in log.parent.iterdir())


def test_version_names_the_release_and_the_commit() -> None:
    result = subprocess.run(
        [*KIOSK, "--version"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    info = build_info()
    assert result.stdout.strip() == info.describe()
    assert info.version == "0.1.0" and info.commit not in ("", "unknown")


# --- what the package may not carry -----------------------------------------------------------


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Iterator[Path]:
    app = tmp_path / "storesight-kiosk" / "_internal"
    (app / "models" / "files").mkdir(parents=True)
    shutil.copy(REPO / "models" / "manifest.json", app / "models" / "manifest.json")
    (app / "kiosk_app").mkdir()
    (app / "kiosk_app" / "cli.pyc").write_bytes(b"")
    (app / "models" / "files" / "dlib_face_recognition_resnet_v1.onnx").write_bytes(b"")
    (app / "mediapipe" / "modules" / "face_detection").mkdir(parents=True)
    yield app.parent


def test_a_clean_bundle_passes_the_contents_check(fake_bundle: Path) -> None:
    assert forbidden_files(fake_bundle) == []


@pytest.mark.parametrize(
    "intruder",
    [
        "_internal/cloud_api/app.pyc",
        "_internal/models/files/shape_predictor_5_face_landmarks.dat",
        "_internal/_dlib_pybind11.cpython-311-x86_64-linux-gnu.so",
        "_internal/sqlalchemy/orm/session.pyc",
        "_internal/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
        "_internal/tests/test_kiosk_support.pyc",
    ],
)
def test_the_contents_check_finds_what_must_not_ship(fake_bundle: Path, intruder: str) -> None:
    path = fake_bundle / intruder
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    assert intruder in forbidden_files(fake_bundle)


def test_the_window_names_a_corrupt_model_file_instead_of_crashing(
    tmp_path: Path, clip: str
) -> None:
    models = tmp_path / "models"
    shutil.copytree(ModelStore().root, models)
    embedder = models / "dlib_face_recognition_resnet_v1.onnx"
    data = bytearray(embedder.read_bytes())
    data[5000] ^= 0xFF
    embedder.write_bytes(bytes(data))
    config = tmp_path / "config" / "storesight" / "kiosk.json"
    config.parent.mkdir(parents=True)
    config.write_text(f'{{"source": "{clip}", "receipts_port": 0}}')
    shot = tmp_path / "window.png"
    result = subprocess.run(
        [*KIOSK, "run", "--screenshot", str(shot)],
        env=_environment(tmp_path, STORESIGHT_MODELS_DIR=str(models)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 1  # the window showed an error, not a camera
    shown = [line for line in result.stderr.splitlines() if "shown_error" in line]
    assert shown and "dlib_face_recognition_resnet_v1.onnx is corrupt" in shown[0]
    assert "Traceback" not in result.stderr
    assert shot.stat().st_size > 10_000


def test_the_kiosks_models_are_shippable_runtime_models() -> None:
    from kiosk_app.kiosk_models import AGE_GENDER_MODELS, KIOSK_MODELS
    from models.manifest import COMMERCIAL_LICENSES, load_manifest

    manifest = load_manifest()
    for name in (*KIOSK_MODELS, *AGE_GENDER_MODELS):
        spec = manifest.spec(name)
        assert spec.used_at == "runtime" and spec.license in COMMERCIAL_LICENSES, name
    assert not set(KIOSK_MODELS) & set(AGE_GENDER_MODELS)  # age and gender stay in the cloud
