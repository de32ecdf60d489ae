"""The kiosk settings dialog and the live preview widget, offscreen with pytest-qt.

Save and reload, invalid input never reaching the file, a preview frame grabbed in a worker
thread from a real video, a counter zone drawn with the mouse, "Test connection" against the
real cloud API over HTTP, and the first-start / broken-file path of `ensure_config`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QThreadPool, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
)
from pytestqt.qtbot import QtBot

from cloud_api import admin
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.settings import CloudSettings
from kiosk_app.gui.preview import OverlayFace, PreviewWidget
from kiosk_app.gui.settings_dialog import SettingsDialog, config_or_dialog, ensure_config
from kiosk_app.kiosk_config import DEFAULT_ZONE, KioskConfig, load_config, save_config
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import free_port, serve
from tests.conftest import require

VIDEO = Path("video") / "facenet-pytorch_video.mp4"


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    # a worker of one test must not call back into the next test's widgets
    assert QThreadPool.globalInstance().waitForDone(15_000)


def _dialog(qtbot: QtBot, config: KioskConfig | None, path: Path) -> SettingsDialog:
    dialog = SettingsDialog(config, path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def _edit(dialog: SettingsDialog, name: str) -> QLineEdit:
    widget = dialog.findChild(QLineEdit, name)
    assert widget is not None, name
    return widget


def _button(dialog: SettingsDialog, name: str) -> QPushButton:
    widget = dialog.findChild(QPushButton, name)
    assert widget is not None, name
    return widget


def _label(dialog: SettingsDialog, name: str) -> QLabel:
    widget = dialog.findChild(QLabel, name)
    assert widget is not None, name
    return widget


# QTest directly (typed); qtbot's mouse and key helpers are the same functions, untyped
def _click(qtbot: QtBot, button: QPushButton) -> None:
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def _press(
    widget: PreviewWidget, point: QPoint, button: Qt.MouseButton = Qt.MouseButton.LeftButton
) -> None:
    QTest.mouseClick(widget, button, Qt.KeyboardModifier.NoModifier, point)


def _type(qtbot: QtBot, edit: QLineEdit, text: str) -> None:
    edit.clear()
    QTest.keyClicks(edit, text)


# ---- save and reload ---------------------------------------------------------------------------


def test_first_start_saves_and_a_new_dialog_shows_the_same_values(
    qtbot: QtBot, tmp_path: Path
) -> None:
    path = tmp_path / "config" / "kiosk.json"
    dialog = _dialog(qtbot, None, path)
    defaults = KioskConfig()
    assert _edit(dialog, "source").text() == defaults.source
    assert _edit(dialog, "device").text() == defaults.device
    assert _edit(dialog, "api_key").echoMode() == QLineEdit.EchoMode.Password
    assert dialog.preview().zone() == list(DEFAULT_ZONE)

    _type(qtbot, _edit(dialog, "source"), "rtsp://cam:secret@10.0.0.5/stream1")
    _type(qtbot, _edit(dialog, "device"), "till-3")
    _type(qtbot, _edit(dialog, "cloud_url"), "https://cloud.example.com")
    _type(qtbot, _edit(dialog, "api_key"), "ssk_abc.def")
    mode = dialog.findChild(QComboBox, "mode")
    detector = dialog.findChild(QComboBox, "detector_range")
    tile = dialog.findChild(QCheckBox, "tile")
    score = dialog.findChild(QDoubleSpinBox, "min_detection_score")
    quality = dialog.findChild(QDoubleSpinBox, "min_shot_quality")
    window = dialog.findChild(QDoubleSpinBox, "binding_window_s")
    port = dialog.findChild(QSpinBox, "receipts_port")
    assert mode and detector and tile and score and quality and window and port
    mode.setCurrentIndex(mode.findData("entrance"))
    detector.setCurrentIndex(detector.findData("short"))
    tile.setChecked(True)
    score.setValue(0.65)
    quality.setValue(0.1)
    window.setValue(25.0)
    port.setValue(9100)
    show_key = dialog.findChild(QCheckBox, "show_key")
    assert show_key is not None
    show_key.setChecked(True)
    assert _edit(dialog, "api_key").echoMode() == QLineEdit.EchoMode.Normal

    _click(qtbot, _button(dialog, "save"))

    assert dialog.result() == QDialog.DialogCode.Accepted
    saved = load_config(path)
    assert saved == dialog.config()
    assert saved is not None
    assert (saved.source, saved.device, saved.cloud_url, saved.api_key) == (
        "rtsp://cam:secret@10.0.0.5/stream1",
        "till-3",
        "https://cloud.example.com",
        "ssk_abc.def",
    )
    assert (saved.mode, saved.detector.range, saved.detector.tile, saved.receipts_port) == (
        "entrance",
        "short",
        True,
        9100,
    )
    assert saved.detector.min_score == pytest.approx(0.65)
    assert saved.shots.min_quality == pytest.approx(0.1)
    assert saved.binding_window_s == pytest.approx(25.0)
    assert [p.name for p in path.parent.iterdir()] == ["kiosk.json"]  # no temporary left

    # reload: a second dialog built from the file shows the same values and saves them unchanged
    before = path.read_text(encoding="utf-8")
    again = _dialog(qtbot, saved, path)
    assert _edit(again, "source").text() == saved.source
    assert _edit(again, "device").text() == "till-3"
    assert _edit(again, "cloud_url").text() == saved.cloud_url
    assert _edit(again, "api_key").text() == "ssk_abc.def"
    assert KioskConfig.model_validate(again.values()) == saved
    _click(qtbot, _button(again, "save"))
    assert again.config() == saved
    assert path.read_text(encoding="utf-8") == before


def test_invalid_fields_are_named_and_the_file_is_left_alone(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "kiosk.json"
    save_config(KioskConfig(device="till-7", api_key="ssk_keep.me"), path)
    original = path.read_bytes()
    dialog = _dialog(qtbot, load_config(path), path)

    _type(qtbot, _edit(dialog, "device"), "till 1")
    _type(qtbot, _edit(dialog, "cloud_url"), "ftp://cloud.example.com")
    _click(qtbot, _button(dialog, "save"))

    status = dialog.status_text()
    assert "Device name" in status and "no spaces" in status
    assert "Cloud API URL" in status and "http://" in status
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert path.read_bytes() == original
    with pytest.raises(RuntimeError):
        dialog.config()

    # fixing the fields saves
    _type(qtbot, _edit(dialog, "device"), "till-1")
    _type(qtbot, _edit(dialog, "cloud_url"), "http://127.0.0.1:8000")
    _click(qtbot, _button(dialog, "save"))
    assert dialog.result() == QDialog.DialogCode.Accepted
    saved = load_config(path)
    assert saved is not None and saved.device == "till-1" and saved.api_key == "ssk_keep.me"


def test_a_file_that_cannot_be_written_is_reported(qtbot: QtBot, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    dialog = _dialog(qtbot, None, blocker / "kiosk.json")
    _click(qtbot, _button(dialog, "save"))
    assert "Cannot save the settings" in dialog.status_text()
    assert dialog.isVisible()


# ---- preview -----------------------------------------------------------------------------------


def test_preview_grabs_a_frame_in_a_worker_and_reports_a_missing_file(
    qtbot: QtBot, tmp_path: Path, data_dir: Path
) -> None:
    video = require(data_dir / VIDEO)
    dialog = _dialog(qtbot, None, tmp_path / "kiosk.json")
    preview = dialog.preview()
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(5)

    _edit(dialog, "source").setText(str(video))
    started = time.monotonic()
    _click(qtbot, _button(dialog, "preview"))
    # the click returned at once: the source is opened in a worker thread, not here
    assert time.monotonic() - started < 0.5
    assert preview.frame_size() is None
    assert not _button(dialog, "preview").isEnabled()
    assert preview.message().startswith("Opening")
    qtbot.waitUntil(lambda: preview.frame_size() is not None, timeout=15_000)
    timer.stop()
    width, height = preview.frame_size() or (0, 0)
    assert width > 100 and height > 100
    assert preview.message() == "" and dialog.status_text() == ""
    assert _button(dialog, "preview").isEnabled()
    assert len(ticks) >= 1  # the event loop ran while the frame was being grabbed

    missing = tmp_path / "nowhere" / "till.mp4"
    _edit(dialog, "source").setText(str(missing))
    _click(qtbot, _button(dialog, "preview"))
    qtbot.waitUntil(lambda: "video file not found" in dialog.status_text(), timeout=5_000)
    assert str(missing) in dialog.status_text()
    assert preview.frame_size() is None
    assert _button(dialog, "preview").isEnabled()

    _edit(dialog, "source").setText("ftp://example.com/x")
    _click(qtbot, _button(dialog, "preview"))
    qtbot.waitUntil(lambda: "unsupported URL scheme" in dialog.status_text(), timeout=5_000)

    # a source that works again clears the preview's error
    _edit(dialog, "source").setText(str(video))
    _click(qtbot, _button(dialog, "preview"))
    qtbot.waitUntil(lambda: preview.frame_size() is not None, timeout=15_000)
    assert dialog.status_text() == ""


# ---- counter zone ------------------------------------------------------------------------------


def test_zone_drawn_with_the_mouse_is_saved(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "kiosk.json"
    dialog = _dialog(qtbot, None, path)
    preview = dialog.preview()
    preview.set_frame(np.full((480, 640, 3), 90, dtype=np.uint8))  # 4:3 → letterboxed
    draw = _button(dialog, "zone_draw")

    _click(qtbot, draw)
    assert draw.isChecked() and preview.is_zone_editing()
    corners = [(0.2, 0.1), (0.8, 0.1), (0.9, 0.95), (0.1, 0.95)]
    for x, y in corners:
        _press(preview, preview.map_from_normalised(x, y))
    stray = preview.map_from_normalised(0.5, 0.5)
    _press(preview, stray)
    _press(preview, stray, Qt.MouseButton.RightButton)  # removes the stray point
    with qtbot.waitSignal(preview.zoneChanged, timeout=1_000) as signal:
        QTest.keyClick(preview, Qt.Key.Key_Return)
    assert not draw.isChecked() and not preview.is_zone_editing()
    assert dialog.isVisible()  # Enter closed the zone, not the dialog
    assert signal.args is not None
    assert np.allclose(signal.args[0], corners, atol=0.01)

    _click(qtbot, _button(dialog, "save"))
    saved = load_config(path)
    assert saved is not None
    assert np.allclose(saved.counter_zone, corners, atol=0.01)

    # Reset brings the default zone back
    again = _dialog(qtbot, saved, path)
    _click(qtbot, _button(again, "zone_reset"))
    assert again.preview().zone() == list(DEFAULT_ZONE)


def test_preview_widget_maps_through_the_letterbox_and_edits_the_zone(qtbot: QtBot) -> None:
    widget = PreviewWidget()
    qtbot.addWidget(widget)
    widget.resize(800, 400)
    widget.show()
    qtbot.waitExposed(widget)
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    widget.set_frame(image)
    image[:] = 255  # the widget keeps its own copy
    assert widget.frame_size() == (640, 480)
    # 640x480 in 800x400: shown 533x400, bars of 133 px left and right
    assert widget.map_to_normalised(QPoint(400, 200)) == pytest.approx((0.5, 0.5), abs=0.005)
    assert widget.map_to_normalised(QPoint(10, 390)) == pytest.approx((0.0, 0.975), abs=0.005)
    assert widget.map_to_normalised(QPoint(799, -5)) == (1.0, 0.0)

    old = [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]
    widget.set_zone(old)
    widget.set_zone_editing(True)
    for x, y in [(0.0, 0.0), (1.0, 0.0)]:
        _press(widget, widget.map_from_normalised(x, y))
    QTest.keyClick(widget, Qt.Key.Key_Return)  # two points: not a polygon yet
    assert widget.is_zone_editing()
    QTest.keyClick(widget, Qt.Key.Key_Escape)  # cancel: the previous zone again
    assert not widget.is_zone_editing() and widget.zone() == old

    widget.set_zone_editing(True)
    with qtbot.waitSignal(widget.zoneChanged, timeout=1_000) as signal:
        for x, y in [(0.3, 0.3), (0.7, 0.3)]:
            _press(widget, widget.map_from_normalised(x, y))
        QTest.keyClick(widget, Qt.Key.Key_Backspace)  # undo (0.7, 0.3)
        _press(widget, widget.map_from_normalised(0.7, 0.3))
        last = widget.map_from_normalised(0.5, 0.8)
        _press(widget, last)
        # a double click on the last point closes the polygon without adding it twice
        QTest.mouseDClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, last)
    assert signal.args is not None
    assert np.allclose(signal.args[0], [(0.3, 0.3), (0.7, 0.3), (0.5, 0.8)], atol=0.01)

    # painting frames with faces, a zone and a message works and draws over the picture
    faces = [
        OverlayFace(1, (100.0, 100.0, 200.0, 220.0), "primary", "VIP gold"),
        OverlayFace(2, (300.0, 120.0, 360.0, 190.0), "companion"),
        OverlayFace(3, (0.0, 0.0, 40.0, 50.0), "passer_by"),
    ]
    widget.set_frame(np.zeros((480, 640, 3), dtype=np.uint8), faces)
    widget.show_message("camera starting…")
    shot = widget.grab().toImage()
    centre = widget.map_from_normalised(150 / 640, 100 / 480)  # the primary box's top edge
    pixel = shot.pixelColor(centre.x(), centre.y() + 1)
    assert pixel.green() > 150 and pixel.red() < 120  # the customer's box is green
    with pytest.raises(ValueError):
        widget.set_frame(np.zeros((4, 4), dtype=np.uint8))


# ---- test connection against the real cloud API -----------------------------------------------


@dataclass
class Cloud:
    url: str
    key: str
    store_id: int


@pytest.fixture
def cloud(migrated_url: str, tmp_path: Path) -> Iterator[Cloud]:  # noqa: F811
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "West")
        store = admin.create_store(session, "West", "W042", "West Harbour")
        _, key = admin.create_device(session, "W042", "till", "till 1")
        store_id = store.id
    settings = CloudSettings(
        database_url=migrated_url, index_dir=tmp_path / "index", auto_migrate=False
    )
    with serve(settings) as server:
        yield Cloud(server.url, key, store_id)


def test_connection_test_fills_the_store_or_shows_the_refusal(
    qtbot: QtBot, tmp_path: Path, cloud: Cloud
) -> None:
    path = tmp_path / "kiosk.json"
    dialog = _dialog(qtbot, None, path)
    test = _button(dialog, "test_connection")
    store_name = _label(dialog, "store_name")

    _type(qtbot, _edit(dialog, "cloud_url"), cloud.url + "/")
    _type(qtbot, _edit(dialog, "api_key"), "ssk_wrong.key")
    _click(qtbot, test)
    qtbot.waitUntil(lambda: "refused" in dialog.status_text(), timeout=10_000)
    assert "the API key was refused" in dialog.status_text()
    assert _label(dialog, "store_id").text() == ""

    _type(qtbot, _edit(dialog, "api_key"), cloud.key)
    _click(qtbot, test)
    qtbot.waitUntil(lambda: store_name.text() == "West Harbour", timeout=10_000)
    assert _label(dialog, "store_id").text() == str(cloud.store_id)
    assert "W042" in dialog.status_text()
    assert test.isEnabled()

    _click(qtbot, _button(dialog, "save"))
    saved = load_config(path)
    assert saved is not None
    assert (saved.store_id, saved.store_name, saved.api_key) == (
        cloud.store_id,
        "West Harbour",
        cloud.key,
    )


def test_connection_to_nothing_says_it_cannot_reach(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot, None, tmp_path / "kiosk.json")
    url = f"http://127.0.0.1:{free_port()}"
    _type(qtbot, _edit(dialog, "cloud_url"), url)
    _type(qtbot, _edit(dialog, "api_key"), "ssk_x.y")
    _click(qtbot, _button(dialog, "test_connection"))
    qtbot.waitUntil(lambda: "cannot reach" in dialog.status_text(), timeout=10_000)
    assert url in dialog.status_text()

    _edit(dialog, "api_key").clear()
    _click(qtbot, _button(dialog, "test_connection"))
    assert "API key" in dialog.status_text()


# ---- first start and a broken file -------------------------------------------------------------


def test_a_corrupted_file_opens_the_dialog_with_the_reason(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "kiosk.json"
    path.write_text('{"source": "0", "device": ', encoding="utf-8")
    found = config_or_dialog(path)
    assert isinstance(found, SettingsDialog)
    qtbot.addWidget(found)
    assert "is not JSON" in found.status_text() and str(path) in found.status_text()
    assert path.read_text(encoding="utf-8") == '{"source": "0", "device": '

    # an invalid field: the reason names it, and the valid fields are kept
    path.write_text(
        json.dumps({"api_key": "ssk_keep.me", "device": "till-9", "min_detection_score": 5}),
        encoding="utf-8",
    )
    found = config_or_dialog(path)
    assert isinstance(found, SettingsDialog)
    qtbot.addWidget(found)
    assert "detector.min_score" in found.status_text()  # an older file's key, where it is now
    assert _edit(found, "api_key").text() == "ssk_keep.me"
    assert _edit(found, "device").text() == "till-9"
    found.show()
    _click(qtbot, _button(found, "save"))
    fixed = load_config(path)
    assert fixed is not None and fixed.api_key == "ssk_keep.me"
    assert fixed.detector.min_score == KioskConfig().detector.min_score


def _when_dialog_shows(act: Callable[[SettingsDialog], None]) -> QTimer:
    """Run `act` on the settings dialog once `exec()` has shown it (polls the event loop)."""
    timer = QTimer()

    def poll() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, SettingsDialog) and widget.isVisible():
                timer.stop()
                act(widget)
                if widget.isVisible():
                    widget.reject()  # never leave exec() blocking the test
                return

    timer.timeout.connect(poll)
    timer.start(10)
    return timer


def test_ensure_config_first_start_save_cancel_and_existing(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "kiosk.json"

    def cancel(dialog: SettingsDialog) -> None:
        _click(qtbot, _button(dialog, "cancel"))

    timer = _when_dialog_shows(cancel)
    assert ensure_config(path) is None
    assert not path.exists()

    def fill_and_save(dialog: SettingsDialog) -> None:
        _type(qtbot, _edit(dialog, "device"), "till-5")
        _click(qtbot, _button(dialog, "save"))

    timer = _when_dialog_shows(fill_and_save)
    config = ensure_config(path)
    timer.stop()
    assert config is not None and config.device == "till-5"
    assert load_config(path) == config

    # a valid file: returned straight away, no dialog
    assert ensure_config(path) == config
    assert not any(
        isinstance(w, SettingsDialog) and w.isVisible() for w in QApplication.topLevelWidgets()
    )
