"""The kiosk's one configuration: defaults < the machine's file < STORESIGHT_KIOSK_* < the
command line, turned into the service's configuration in one place; and a fresh install's
defaults reach a default `storesight-cloud serve` with only the key entered."""

from __future__ import annotations

import argparse
import json
import re
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
from cloud_api.settings import CloudSettings
from contract import CheckoutResponse
from facelib.config import DetectorSettings
from kiosk_app.cloud_client import CloudClient
from kiosk_app.config_loader import load_kiosk_config
from kiosk_app.gui.settings_dialog import SettingsDialog, fetch_device
from kiosk_app.kiosk_config import (
    DEFAULT_CLOUD_URL,
    LEGACY_KEYS,
    KioskConfig,
    load_config,
    save_config,
)
from kiosk_app.outbox import Outbox
from kiosk_app.service import KioskService, RunOptions
from kiosk_app.settings import DEFAULT_BEST_SHOTS, PipelineSettings
from kiosk_app.tracking import TrackerSettings
from kiosk_app.uplink import Uplink
from models.store import ModelStore
from tests.cloud_fixtures import (
    migrated_url,  # noqa: F401  (fixture)
    west_harbour_till,
)
from tests.cloud_server import port_free, serve
from tests.test_kiosk_uplink import checkout

ZONE_FILE = [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]
ZONE_ENV = [(0.2, 0.2), (0.8, 0.2), (0.5, 0.8)]


@pytest.fixture
def no_kiosk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STORESIGHT_KIOSK_"):
            monkeypatch.delenv(name)


def _file(tmp_path: Path, **fields: Any) -> Path:
    return save_config(KioskConfig(**fields), tmp_path / "kiosk.json")


# ---- precedence ---------------------------------------------------------------------------------


def test_without_a_file_the_defaults_apply(tmp_path: Path, no_kiosk_env: None) -> None:
    assert load_kiosk_config(tmp_path / "none.json", environ={}) == KioskConfig()


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
        "STORESIGHT_KIOSK_DETECTOR__TILE": "true",
        "STORESIGHT_KIOSK_DATA_DIR": str(tmp_path / "data"),
    }
    config = load_kiosk_config(path, environ=environ)
    assert (config.device, config.receipts_port, config.counter_zone, config.detector.tile) == (
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
        {"device": "till-9", "cloud_url": None, "detector": {"range": "short"}},
        environ=environ,
    )
    assert (config.device, config.mode, config.detector.range) == ("till-9", "entrance", "short")
    assert config.cloud_url == "http://file.example"  # None on the command line: not given


def test_a_bad_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_RECEIPTS_PORT"):
        load_kiosk_config(tmp_path / "none.json", environ={"STORESIGHT_KIOSK_RECEIPTS_PORT": "x"})
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_COUNTER_ZONE is not JSON"):
        load_kiosk_config(tmp_path / "none.json", environ={"STORESIGHT_KIOSK_COUNTER_ZONE": "("})
    with pytest.raises(ValueError, match=r"device \(the command line\)"):
        load_kiosk_config(tmp_path / "none.json", {"device": "no spaces"}, environ={})


def test_the_service_runs_on_the_kiosk_configuration_itself(
    tmp_path: Path, store: ModelStore
) -> None:
    config = KioskConfig(
        source="rtsp://127.0.0.1:9/till",  # never opened: the service is not started
        cloud_url="http://cloud.example",
        api_key="ssk_a.b",
        device="till-4",
        data_dir=tmp_path,
        receipts_port=0,
        binding_window_s=20.0,
        binding_grace_s=0.5,
        receipts_folder=tmp_path / "pos-export",
        queue_size=7,
    )
    (tmp_path / "pos-export").mkdir()
    service = KioskService(
        config,
        lambda event: None,
        options=RunOptions(resize=(640, 480), realtime=True),
        store=store,
    )
    try:
        assert service.config is config  # no copy of any field
        assert service.pipeline.settings == config.pipeline_settings()
        assert (
            service.uplink.base_url,
            service.binder.device,
            service.binder.window_s,
            service.binder.grace_s,
            service.watcher is not None,
            service.options.resize,
            service.options.realtime,
            service.options.loop,
            service.options.opt_out("1"),
        ) == ("http://cloud.example", "till-4", 20.0, 0.5, True, (640, 480), True, False, False)
        assert (tmp_path / "outbox.sqlite3").exists()  # the data folder is the configured one
    finally:
        service.stop()


# ---- sections, the face library's variables, older files ----------------------------------------


def test_a_nested_setting_is_layered_like_any_other(tmp_path: Path) -> None:
    """defaults < file < environment < command line, for a setting inside a section."""
    empty = tmp_path / "none.json"
    assert load_kiosk_config(empty, environ={}).detector.tile_size == 256
    path = _file(tmp_path, detector=DetectorSettings(range="full", tile_size=320))
    assert load_kiosk_config(path, environ={}).detector.tile_size == 320
    environ = {"STORESIGHT_KIOSK_DETECTOR__TILE_SIZE": "384"}
    config = load_kiosk_config(path, environ=environ)
    assert (config.detector.tile_size, config.detector.range) == (384, "full")
    config = load_kiosk_config(path, {"detector": {"tile_size": 448}}, environ=environ)
    assert config.detector.tile_size == 448
    assert config.pipeline_settings().detector.tile_size == 448


def test_sections_come_from_variables_or_json(tmp_path: Path) -> None:
    environ = {
        "STORESIGHT_KIOSK_TRACKER__MIN_HITS": "5",
        "STORESIGHT_KIOSK_SHOTS": '{"best_k": 4, "min_quality": 0.1}',
        "STORESIGHT_KIOSK_SHOTS__BEST_K": "6",  # a field's variable over its section's JSON
        "STORESIGHT_KIOSK_QUEUE_SIZE": "9",
        "STORESIGHT_KIOSK_RUNTIME__INTRA_OP_THREADS": "2",
    }
    settings = load_kiosk_config(tmp_path / "none.json", environ=environ).pipeline_settings()
    assert (
        settings.tracker.min_hits,
        settings.shots.best_k,
        settings.shots.min_quality,
        settings.queue_size,
        settings.runtime.intra_op_threads,
    ) == (5, 6, 0.1, 9, 2)
    assert settings.tracker.max_lost_s == TrackerSettings().max_lost_s  # the rest: defaults


def test_a_bad_nested_value_names_its_variable(tmp_path: Path) -> None:
    none = tmp_path / "none.json"
    with pytest.raises(
        ValueError, match=r"tracker\.min_hits \(STORESIGHT_KIOSK_TRACKER__MIN_HITS\)"
    ):
        load_kiosk_config(none, environ={"STORESIGHT_KIOSK_TRACKER__MIN_HITS": "0"})
    with pytest.raises(ValueError, match=r"detector\.type \(STORESIGHT_FACE_DETECTOR__TYPE\)"):
        load_kiosk_config(none, environ={"STORESIGHT_FACE_DETECTOR__TYPE": "haar"})
    with pytest.raises(ValueError, match=r"shots\.best_k \(the command line\)"):
        load_kiosk_config(none, {"shots": {"best_k": 0}}, environ={})
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_SHOTS is not JSON"):
        load_kiosk_config(none, environ={"STORESIGHT_KIOSK_SHOTS": "{best_k"})
    with pytest.raises(ValueError, match=r"unknown kiosk setting\(s\): detector\.colour"):
        load_kiosk_config(none, {"detector": {"colour": "red"}}, environ={})


def test_a_variable_that_names_no_setting_is_refused(tmp_path: Path) -> None:
    none = tmp_path / "none.json"
    with pytest.raises(ValueError, match="it is now STORESIGHT_KIOSK_DETECTOR__RANGE"):
        load_kiosk_config(none, environ={"STORESIGHT_KIOSK_DETECTOR_RANGE": "short"})
    with pytest.raises(ValueError, match="did you mean STORESIGHT_KIOSK_TRACKER__MIN_HITS"):
        load_kiosk_config(none, environ={"STORESIGHT_KIOSK_TRACKER_MIN_HITS": "2"})
    with pytest.raises(ValueError, match="STORESIGHT_KIOSK_CAMERA is not a kiosk setting"):
        load_kiosk_config(none, environ={"STORESIGHT_KIOSK_CAMERA": "1"})
    # the file's own variable is not a setting, and not refused
    assert load_kiosk_config(none, environ={"STORESIGHT_KIOSK_CONFIG": str(none)}) == KioskConfig()


def test_the_kiosks_variable_wins_over_the_face_librarys(tmp_path: Path) -> None:
    path = _file(tmp_path, detector=DetectorSettings(range="full", type="mediapipe"))
    face = {
        "STORESIGHT_FACE_DETECTOR__TYPE": "yunet",
        "STORESIGHT_FACE_DETECTOR__RANGE": "short",
        "STORESIGHT_FACE_ESTIMATE_AGE_GENDER": "true",  # not the kiosk's: ignored
    }
    config = load_kiosk_config(path, environ=face)
    assert (config.detector.type, config.detector.range) == ("yunet", "short")  # over the file
    both = {**face, "STORESIGHT_KIOSK_DETECTOR__TYPE": "mediapipe"}
    config = load_kiosk_config(path, environ=both)
    assert (config.detector.type, config.detector.range) == ("mediapipe", "short")
    # a section given whole by the kiosk's variable still wins over the face library's field
    whole = {**face, "STORESIGHT_KIOSK_DETECTOR": '{"range": "full"}'}
    assert load_kiosk_config(path, environ=whole).detector.range == "full"


def test_nothing_else_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_kiosk_env: None
) -> None:
    monkeypatch.setenv("STORESIGHT_KIOSK_QUEUE_SIZE", "9")
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TYPE", "yunet")
    assert (PipelineSettings().queue_size, PipelineSettings().detector.type) == (4, "mediapipe")
    assert KioskConfig().pipeline_settings().queue_size == 4
    loaded = load_kiosk_config(tmp_path / "none.json")  # the one reader: os.environ by default
    assert (loaded.queue_size, loaded.detector.type) == (9, "yunet")
    monkeypatch.setenv("STORESIGHT_KIOSK_QUEUE_SIZE", "12")
    assert loaded.pipeline_settings().queue_size == 9  # a view of what was loaded


#: a file as the settings dialog saved it before the detector and shot settings had sections
OLDER_FILE: dict[str, object] = {
    "source": "rtsp://cam.local/stream1",
    "mode": "till",
    "cloud_url": "https://cloud.example.com",
    "api_key": "ssk_abc.def",
    "device": "till-3",
    "store_id": 7,
    "store_name": "West Harbour",
    "counter_zone": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]],
    "detector_range": "short",
    "tile": True,
    "min_detection_score": 0.65,
    "min_shot_quality": 0.1,
    "binding_window_s": 25.0,
    "receipts_port": 9100,
    "data_dir": "/var/lib/storesight/kiosk",
}


def test_a_file_saved_before_the_sections_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.json"
    path.write_text(json.dumps(OLDER_FILE, indent=2), encoding="utf-8")
    config = load_kiosk_config(path, environ={})
    assert (config.detector.range, config.detector.tile, config.detector.min_score) == (
        "short",
        True,
        0.65,
    )
    assert config.shots.min_quality == 0.1
    assert config.shots.best_k == DEFAULT_BEST_SHOTS  # not in the file: the default
    assert (config.source, config.device, config.store_id, config.receipts_port) == (
        "rtsp://cam.local/stream1",
        "till-3",
        7,
        9100,
    )
    assert config.counter_zone == ZONE_FILE
    assert config.data_dir == Path("/var/lib/storesight/kiosk")
    save_config(config, path)  # saved again: the sections, and the same configuration
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert not LEGACY_KEYS.keys() & saved.keys() and saved["detector"]["range"] == "short"
    assert load_config(path) == config


def test_the_command_line_flags_reach_the_configuration(tmp_path: Path) -> None:
    from kiosk_app.cli import _overrides

    flags = argparse.Namespace(
        source="clip.mp4",
        mode="entrance",
        cloud_url=None,
        api_key="ssk_a.b",
        device=None,
        data_dir=tmp_path,
        receipts_port=9400,
        range="short",
        tile=True,
        tile_size=384,
    )
    config = load_kiosk_config(tmp_path / "none.json", _overrides(flags), environ={})
    assert (config.source, config.mode, config.api_key, config.data_dir) == (
        "clip.mp4",
        "entrance",
        "ssk_a.b",
        tmp_path,
    )
    assert (config.receipts_port, config.cloud_url, config.device) == (
        9400,
        DEFAULT_CLOUD_URL,
        "till-1",
    )
    assert (config.detector.range, config.detector.tile, config.detector.tile_size) == (
        "short",
        True,
        384,
    )


# ---- every variable the README documents ---------------------------------------------------------

#: each documented variable: a value, and the setting it must change to what
DOCUMENTED: dict[str, tuple[str, tuple[str, ...], object]] = {
    "STORESIGHT_KIOSK_SOURCE": ("rtsp://cam/1", ("source",), "rtsp://cam/1"),
    "STORESIGHT_KIOSK_MODE": ("entrance", ("mode",), "entrance"),
    "STORESIGHT_KIOSK_CLOUD_URL": ("https://c.example", ("cloud_url",), "https://c.example"),
    "STORESIGHT_KIOSK_API_KEY": ("ssk_x.y", ("api_key",), "ssk_x.y"),
    "STORESIGHT_KIOSK_DEVICE": ("till-9", ("device",), "till-9"),
    "STORESIGHT_KIOSK_RECEIPTS_PORT": ("9999", ("receipts_port",), 9999),
    "STORESIGHT_KIOSK_RECEIPTS_FOLDER": ("/pos/out", ("receipts_folder",), Path("/pos/out")),
    "STORESIGHT_KIOSK_DATA_DIR": ("/data/kiosk", ("data_dir",), Path("/data/kiosk")),
    "STORESIGHT_KIOSK_COUNTER_ZONE": (json.dumps(ZONE_ENV), ("counter_zone",), ZONE_ENV),
    "STORESIGHT_KIOSK_BINDING_WINDOW_S": ("30", ("binding_window_s",), 30.0),
    "STORESIGHT_KIOSK_BINDING_GRACE_S": ("1.5", ("binding_grace_s",), 1.5),
    "STORESIGHT_KIOSK_DETECTOR__RANGE": ("short", ("detector", "range"), "short"),
    "STORESIGHT_KIOSK_DETECTOR__TILE": ("true", ("detector", "tile"), True),
    "STORESIGHT_KIOSK_DETECTOR__MIN_SCORE": ("0.7", ("detector", "min_score"), 0.7),
    "STORESIGHT_KIOSK_DETECTOR__TYPE": ("yunet", ("detector", "type"), "yunet"),
    "STORESIGHT_KIOSK_DETECTOR__TILE_SIZE": ("512", ("detector", "tile_size"), 512),
    "STORESIGHT_KIOSK_SHOTS__BEST_K": ("12", ("shots", "best_k"), 12),
    "STORESIGHT_KIOSK_SHOTS__MIN_QUALITY": ("0.2", ("shots", "min_quality"), 0.2),
    "STORESIGHT_KIOSK_TRACKER__MIN_HITS": ("4", ("tracker", "min_hits"), 4),
    "STORESIGHT_KIOSK_TRACKER__MAX_LOST_S": ("2.5", ("tracker", "max_lost_s"), 2.5),
    "STORESIGHT_KIOSK_QUEUE_SIZE": ("16", ("queue_size",), 16),
    "STORESIGHT_KIOSK_RUNTIME__INTRA_OP_THREADS": ("3", ("runtime", "intra_op_threads"), 3),
}


def _at(config: KioskConfig, path: tuple[str, ...]) -> object:
    value: object = config
    for part in path:
        value = getattr(value, part)
    return value


def test_every_variable_the_readme_documents_takes_effect(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"STORESIGHT_KIOSK_[A-Z0-9_]+", readme)) - {
        "STORESIGHT_KIOSK_CONFIG"
    }
    assert documented == DOCUMENTED.keys()
    defaults = KioskConfig()
    for name, (text, path, expected) in DOCUMENTED.items():
        config = load_kiosk_config(tmp_path / "none.json", environ={name: text})
        assert _at(config, path) == expected != _at(defaults, path), name


def test_the_configuration_file_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, device="till-5")
    monkeypatch.setenv("STORESIGHT_KIOSK_CONFIG", str(path))
    assert load_kiosk_config(environ={}).device == "till-5"


# ---- a fresh install against a default serve ----------------------------------------------------


def test_the_default_cloud_url_is_where_serve_listens_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STORESIGHT_CLOUD_HOST", raising=False)
    monkeypatch.delenv("STORESIGHT_CLOUD_PORT", raising=False)
    cloud = CloudSettings()
    assert KioskConfig().cloud_url == DEFAULT_CLOUD_URL == f"http://{cloud.host}:{cloud.port}"


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
    key = west_harbour_till(migrated_url)
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


@pytest.fixture
def default_serve(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cloud]:
    """The cloud app where `storesight-cloud serve` listens with its defaults."""
    monkeypatch.delenv("STORESIGHT_CLOUD_HOST", raising=False)
    monkeypatch.delenv("STORESIGHT_CLOUD_PORT", raising=False)
    settings = CloudSettings(
        database_url=migrated_url, index_dir=tmp_path / "index", auto_migrate=False
    )
    if not port_free(settings.host, settings.port):
        pytest.skip(f"{settings.host}:{settings.port} is taken: no default serve can start here")
    key = west_harbour_till(migrated_url)
    with serve(settings, at_its_address=True) as server:
        yield Cloud(server.url, key)


def test_a_kiosk_given_only_its_key_reaches_a_default_serve(
    tmp_path: Path, default_serve: Cloud
) -> None:
    config = load_kiosk_config(tmp_path / "none.json", {"api_key": default_serve.key}, environ={})
    assert config == KioskConfig(api_key=default_serve.key)  # the defaults and the key
    assert config.cloud_url == default_serve.url

    device = fetch_device(config.cloud_url, config.api_key)  # the dialog's connection check
    assert (device.store_code, device.store_name, device.kind) == ("W042", "West Harbour", "till")

    cards: list[CheckoutResponse] = []
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink(
        outbox, config.cloud_url, config.api_key, on_card=lambda item, card: cards.append(card)
    )
    try:
        outbox.put(checkout())
        assert uplink.deliver_once()
    finally:
        uplink.stop()
        outbox.close()
    assert len(cards) == 1 and cards[0].receipt_id >= 1  # the checkout reached the cloud
    assert uplink.health.snapshot()[0] == "online"


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
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_kiosk_env: None
) -> None:
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TYPE", "yunet")
    monkeypatch.setenv("STORESIGHT_FACE_DETECTOR__TILE_SIZE", "512")
    config = load_kiosk_config(
        tmp_path / "none.json", {"detector": {"range": "short", "tile": True}}
    )
    detector = config.pipeline_settings().detector
    assert (detector.type, detector.tile_size, detector.range, detector.tile) == (
        "yunet",
        512,
        "short",
        True,
    )
