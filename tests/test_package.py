"""The packaged kiosk, installed for real: `make package-check` (after `make package`).

Installs ``dist/storesight-kiosk_*.deb`` with dpkg into this machine, runs the installed
selftest and the installed app (headless on a clip, and its window offscreen for a
screenshot), upgrades over itself keeping the till user's configuration and outbox, and
removes it. Needs root and dpkg (CI machines are Debian, run as root); skipped elsewhere
with the reason, and skipped from the default test run (it needs the built package).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installers.bundle_contents import forbidden_files
from tests.conftest import require

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[1]
PREFIX = Path("/opt/storesight-kiosk")
INSTALLED = Path("/usr/bin/storesight-kiosk")


def _deb() -> Path:
    found = sorted((REPO / "dist").glob("storesight-kiosk_*.deb"))
    if not found:
        pytest.fail("no dist/storesight-kiosk_*.deb: run `make package` first")
    return found[-1]


def _dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def till_user(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a till user with their own config and data folders."""
    home = tmp_path_factory.mktemp("till-user")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QT_QPA_PLATFORM": "offscreen",
        "LANG": "C.UTF-8",
    }


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("dpkg") is None:
        pytest.skip("installing the .deb needs root and dpkg (CI runs as root on Debian)")
    deb = _deb()
    # as a store installs it: apt resolves the Debian packages it depends on (Qt's xcb)
    result = subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"]
        + ["--no-install-recommends", str(deb)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "selftest: passed" in result.stdout  # the post-install check ran
        yield deb
    finally:
        if _dpkg("-s", "storesight-kiosk").returncode == 0:  # never leave the machine changed
            _dpkg("--purge", "storesight-kiosk")


def _kiosk(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALLED), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _clip(data_dir: Path) -> str:
    return str(require(data_dir / "video" / "facenet-pytorch_video.mp4"))


def test_the_bundle_carries_no_cloud_code_and_no_dev_model(installed: Path) -> None:
    assert forbidden_files(PREFIX) == []
    files = {p.name for p in PREFIX.rglob("*")}
    assert {"dlib_face_recognition_resnet_v1.onnx", "manifest.json", "selftest-face.jpg"} <= files
    assert "face_detection_short_range.tflite" in files  # MediaPipe's own copy
    listed = _dpkg("-L", "storesight-kiosk").stdout.splitlines()
    for path in (
        "/usr/lib/systemd/user/storesight-kiosk.service",
        "/etc/xdg/autostart/storesight-kiosk.desktop",
        "/usr/share/applications/storesight-kiosk.desktop",
        "/usr/bin/storesight-kiosk",
    ):
        assert path in listed


def test_the_systemd_unit_and_desktop_entries_are_valid(installed: Path) -> None:
    unit = Path("/usr/lib/systemd/user/storesight-kiosk.service")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit cannot be verified here")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr  # and ExecStart exists
    text = unit.read_text()
    assert "Restart=on-failure" in text and "RestartPreventExitStatus=3" in text
    autostart = Path("/etc/xdg/autostart/storesight-kiosk.desktop").read_text()
    assert "systemctl --user start storesight-kiosk.service" in autostart


def test_the_installed_version_names_its_commit(installed: Path, till_user: dict[str, str]) -> None:
    result = _kiosk(till_user, "--version", timeout=60)
    assert result.returncode == 0, result.stderr
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert result.stdout.startswith("storesight-kiosk 0.1.0 (commit ")
    assert commit in result.stdout and result.stdout.rstrip().endswith("package)")


def test_the_installed_selftest_passes_on_the_clip(
    installed: Path, till_user: dict[str, str], data_dir: Path
) -> None:
    result = _kiosk(till_user, "selftest", "--source", _clip(data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK   face pipeline: 1 face(s) in selftest-face.jpg" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_the_installed_app_tracks_and_embeds_faces_headless(
    installed: Path, till_user: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    result = _kiosk(
        till_user, "run", "--headless", "--source", _clip(data_dir), "--events", str(events)
    )
    assert result.returncode == 0, result.stderr
    ended = [
        line
        for line in map(json.loads, events.read_text().splitlines())
        if line["event"] == "track_ended" and line["embedding"]
    ]
    assert ended, "no track with an embedding came out of the installed app"
    assert all(len(line["embedding"]) == 128 for line in ended)


def test_the_installed_window_starts_offscreen(
    installed: Path, till_user: dict[str, str], data_dir: Path
) -> None:
    config = Path(till_user["XDG_CONFIG_HOME"]) / "storesight" / "kiosk.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"source": _clip(data_dir), "receipts_port": 0}))
    shot = REPO / "screenshots" / "installed-cashier-window.png"
    result = _kiosk(till_user, "run", "--screenshot", str(shot))
    assert result.returncode == 0, result.stderr
    assert shot.stat().st_size > 20_000  # a real picture of the window, not a blank one
    log = Path(till_user["XDG_DATA_HOME"]) / "storesight" / "kiosk" / "logs" / "kiosk.log"
    assert "kiosk_service_started" in log.read_text()


def test_an_upgrade_keeps_config_and_outbox_and_removal_leaves_nothing(
    installed: Path, till_user: dict[str, str]
) -> None:
    config = Path(till_user["XDG_CONFIG_HOME"]) / "storesight" / "kiosk.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"device": "till-7", "receipts_port": 0}))
    outbox = Path(till_user["XDG_DATA_HOME"]) / "storesight" / "kiosk" / "outbox.sqlite3"
    before = _kiosk(till_user, "selftest", "--source", "7")
    assert "OK   outbox" in before.stdout, before.stdout
    with sqlite3.connect(outbox) as db:  # a checkout the cloud has not received yet
        db.execute(
            "INSERT INTO outbox (idempotency_key, receipt_number, body, size, state, "
            "enqueued_at, attempts, next_attempt_at) "
            "VALUES ('till-7:R-1:1', 'R-1', '{}', 2, 'pending', 0, 0, 0)"
        )
    saved = config.read_bytes(), outbox.read_bytes()

    upgrade = _dpkg("-i", str(installed))  # the same package over itself
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert (config.read_bytes(), outbox.read_bytes()) == saved
    after = _kiosk(till_user, "selftest", "--source", "7")
    assert "OK   outbox" in after.stdout and ": 1 pending, 0 dead" in after.stdout

    removal = _dpkg("-r", "storesight-kiosk")
    assert removal.returncode == 0, removal.stdout + removal.stderr
    assert not PREFIX.exists() and not INSTALLED.exists()
    assert not Path("/usr/lib/systemd/user/storesight-kiosk.service").exists()
    purge = _dpkg("--purge", "storesight-kiosk")
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert _dpkg("-s", "storesight-kiosk").returncode != 0  # no trace left in dpkg
    assert config.exists() and outbox.exists()  # the till user's own data stays theirs
