"""The kiosk's one configuration: defaults < the machine's file < STORESIGHT_KIOSK_* < the
command line, turned into the service's configuration in one place; and a fresh install's
defaults reach a default `storesight-cloud serve` with only the key entered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton
from pytestqt.qtbot import QtBot

import kiosk_app.gui.settings_dialog as settings_dialog
from cloud_api import admin
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.settings import CloudSettings
from kiosk_app.cloud_client import CloudClient
from kiosk_app.gui.settings_dialog import SettingsDialog
from kiosk_app.kiosk_config import load_kiosk_config, service_config
from kiosk_app.machine_config import DEFAULT_CLOUD_URL, MachineConfig, save_config
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve

ZONE_FILE = [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]
ZONE_ENV = [(0.2, 0.2), (0.8, 0.2), (0.5, 0.8)]


@pytest.fixture
def no_kiosk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STORESIGHT_KIOSK_"):
            monkeypatch.delenv(name)


def _file(tmp_path: Path, **fields: Any) -> Path:
    return save_config(MachineConfig(**fields), tmp_path / "kiosk.json")


# ---- precedence ---------------------------------------------------------------------------------


def test_without_a_file_the_defaults_apply(tmp_path: Path, no_kiosk_env: None) -> None:
    assert load_kiosk_config(tmp_path / "none.json", environ={}) == MachineConfig()


def test_the_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = _file(tmp_path, device="till-7", receipts_port=9100, counter_zone=ZONE_FILE)
    config = load_kiosk_config(path, environ={})
    assert (config.device, config.receipts_port, config.counter_zone) == (
        "till-7",
        9100,
        ZONE_FILE,
    )
    assert config.cloud_url == DEFAULT_CLOUD_URL  # not in the file: the default


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, device="till-7", receipts_port=9100, api_key="ssk_file.key")
    environ = {
        "STORESIGHT_KIOSK_DEVICE": "till-8",
        "STORESIGHT_KIOSK_RECEIPTS_PORT": "9200",
        "STORESIGHT_KIOSK_COUNTER_ZONE": "[[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]",
        "STORESIGHT_KIOSK_TILE": "true",
        "STORESIGHT_KIOSK_DATA_DIR": str(tmp_path / "data"),
    }
    config = load_kiosk_config(path, environ=environ)
    assert (config.device, config.receipts_port, config.counter_zone, config.tile) == (
        "till-8",
        9200,
        ZONE_ENV,
        True,
    )
    assert config.data_dir == tmp_path / "data"
    assert config.api_key == "ssk_file.key"  # not in the environment: the file's


def test_the_command_line_overrides_the_environment(tmp_path: Path) -> None:
    path = _file(tmp_path, device="till-7", cloud_url="http://file.example")
    environ = {"STORESIGHT_KIOSK_DEVICE": "till-8", "STORESIGHT_KIOSK_MODE": "entrance"}
    config = load_kiosk_config(
        path,
        {"device": "till-9", "cloud_url": None, "detector_range": "short"},
        environ=environ,
    )
    assert (config.device, config.mode, config.detector_range) == ("till-9", "entrance", "short")
    assert config.cloud_url == "http://file.example"  # None on the command line: not given


def test_a_bad_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_RECEIPTS_PORT"):
        load_kiosk_config(tmp_path / "none.json", environ={"STORESIGHT_KIOSK_RECEIPTS_PORT": "x"})
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_COUNTER_ZONE is not JSON"):
        load_kiosk_config(tmp_path / "none.json", environ={"STORESIGHT_KIOSK_COUNTER_ZONE": "("})
    with pytest.raises(ValueError, match=r"device \(the command line\)"):
        load_kiosk_config(tmp_path / "none.json", {"device": "no spaces"}, environ={})


def test_the_service_configuration_comes_from_the_kiosk_configuration(tmp_path: Path) -> None:
    config = MachineConfig(
        source="clip.mp4",
        cloud_url="http://cloud.example",
        api_key="ssk_a.b",
        device="till-4",
        data_dir=tmp_path,
        receipts_port=9300,
        binding_window_s=20.0,
    )
    service = service_config(config, resize=(640, 480), realtime=True)
    assert (
        service.source,
        service.cloud_url,
        service.api_key,
        service.device,
        service.data_dir,
        service.receipts_port,
        service.window_s,
        service.resize,
        service.realtime,
        service.loop,
        service.opt_out("1"),
    ) == (
        "clip.mp4",
        "http://cloud.example",
        "ssk_a.b",
        "till-4",
        tmp_path,
        9300,
        20.0,
        (640, 480),
        True,
        False,
        False,
    )


# ---- a fresh install against a default serve ----------------------------------------------------


def test_the_default_cloud_url_is_where_serve_listens_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STORESIGHT_CLOUD_HOST", raising=False)
    monkeypatch.delenv("STORESIGHT_CLOUD_PORT", raising=False)
    cloud = CloudSettings()
    assert MachineConfig().cloud_url == DEFAULT_CLOUD_URL == f"http://{cloud.host}:{cloud.port}"


class _DefaultServe(httpx.HTTPTransport):
    """Stands in for a `serve` on its default port: requests for 127.0.0.1:8700 reach the
    test's server (which listens on a free port, 8700 may be taken on a test machine)."""

    def __init__(self, served_url: str) -> None:
        super().__init__()
        self._port = httpx.URL(served_url).port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        default = httpx.URL(DEFAULT_CLOUD_URL)
        assert (request.url.host, request.url.port) == (default.host, default.port)
        request.url = request.url.copy_with(port=self._port)
        return super().handle_request(request)


@dataclass
class Cloud:
    url: str
    key: str


@pytest.fixture
def cloud(migrated_url: str, tmp_path: Path) -> Iterator[Cloud]:  # noqa: F811
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "West")
        admin.create_store(session, "West", "W042", "West Harbour")
        _, key = admin.create_device(session, "W042", "till", "till 1")
    settings = CloudSettings(
        database_url=migrated_url, index_dir=tmp_path / "index", auto_migrate=False
    )
    with serve(settings) as server:
        yield Cloud(server.url, key)


def test_a_fresh_install_connects_to_a_default_serve_with_only_the_key(
    qtbot: QtBot, tmp_path: Path, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    def client(url: str, key: str, **options: Any) -> CloudClient:
        return CloudClient(url, key, transport=_DefaultServe(cloud.url), **options)

    monkeypatch.setattr(settings_dialog, "CloudClient", client)
    dialog = SettingsDialog(None, tmp_path / "kiosk.json")  # first start: the defaults
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    key = dialog.findChild(QLineEdit, "api_key")
    test = dialog.findChild(QPushButton, "test_connection")
    store_name = dialog.findChild(QLabel, "store_name")
    url = dialog.findChild(QLineEdit, "cloud_url")
    assert key is not None and test is not None and store_name is not None and url is not None
    assert url.text() == DEFAULT_CLOUD_URL

    QTest.keyClicks(key, cloud.key)  # the only thing entered
    QTest.mouseClick(test, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: store_name.text() == "West Harbour", timeout=10_000)
    assert "W042" in dialog.status_text()


# ---- the command line ---------------------------------------------------------------------------


def test_the_headless_run_reads_the_loader_and_needs_only_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_kiosk_env: None
) -> None:
    from kiosk_app.cli import main

    path = _file(tmp_path, device="till-7")
    args = ["run", "--source", str(tmp_path / "clip.mp4"), "--headless", "--config", str(path)]
    assert main([*args, "--cloud-url", "http://cloud.example"]) == 1
    assert "give --api-key" in capsys.readouterr().err
    assert main([*args, "--device", "not a name"]) == 1
    assert "device (the command line)" in capsys.readouterr().err


def test_the_face_library_variables_still_reach_the_kiosk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TYPE", "yunet")
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TILE_SIZE", "512")
    settings = MachineConfig(detector_range="short", tile=True).kiosk_settings()
    detector = settings.face.detector
    assert (detector.type, detector.tile_size, detector.range, detector.tile) == (
        "yunet",
        512,
        "short",
        True,
    )
