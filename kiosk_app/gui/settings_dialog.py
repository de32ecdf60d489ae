"""The kiosk settings dialog: camera with preview and counter zone, store and device, thresholds.

`SettingsDialog(config, path)` edits a `KioskConfig` (defaults when `config` is None, i.e.
on first start) and, on Save, validates it and writes it atomically to `path`. Anything slow
runs in a worker thread (`run_in_thread`): grabbing a preview frame from the source, and
"Test connection" (`GET /v1/device` on the cloud API with the device key). Errors — a source
that cannot be opened, a refused key, an invalid field — appear in the red status line at the
bottom; the window never freezes and an invalid entry never reaches the file.

`ensure_config(path)` is what the kiosk calls at start: the saved configuration, or (first
start, or a file that cannot be used) the dialog, modally, and what the user saved.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import shiboken6
import structlog
from numpy.typing import NDArray
from pydantic import ValidationError
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from contract import DeviceInfo
from kiosk_app.cloud_client import CloudClient, CloudError
from kiosk_app.config_loader import setting
from kiosk_app.gui.preview import PreviewWidget
from kiosk_app.gui.workers import run_in_thread
from kiosk_app.kiosk_config import (
    DEFAULT_ZONE,
    ConfigFileError,
    KioskConfig,
    config_path,
    load_config,
    save_config,
    upgraded,
)
from kiosk_app.sources import SourceError, mask_url, open_source, opened
from storesight_common.validation import location

log = structlog.get_logger(__name__)

#: Timeout of the "Test connection" request, seconds.
CONNECTION_TIMEOUT_S = 5.0
#: A live source (camera, stream) is read this many times for the preview: the first frames
#: of a webcam are often black while its exposure settles.
LIVE_WARMUP_FRAMES = 5

SOURCE_PLACEHOLDER = (
    "0 (first camera) · rtsp://user:password@192.168.1.20:554/stream · "
    "C:\\videos\\till.mp4 · a folder of images"
)
ERROR_STYLE = "color: #c62828; font-weight: bold;"
INFO_STYLE = "color: #2e7d32;"
INVALID_STYLE = "border: 2px solid #c62828;"
_URL = re.compile(r"^https?://\S+$")

#: What the user sees for each KioskConfig setting the dialog shows, by its dotted path.
FIELD_LABELS: dict[str, str] = {
    "source": "Camera source",
    "mode": "Mode",
    "cloud_url": "Cloud API URL",
    "api_key": "API key",
    "device": "Device name",
    "store_id": "Store id",
    "store_name": "Store name",
    "counter_zone": "Counter zone",
    "detector.range": "Detector range",
    "detector.tile": "Tile small faces",
    "detector.min_score": "Min detection score",
    "shots.min_quality": "Min shot quality",
    "binding_window_s": "Binding window",
    "receipts_port": "Local receipts port",
    "data_dir": "Data folder",
}
#: Friendlier wording than the regular expression pydantic reports.
_PATTERN_HINTS = {
    "cloud_url": "must start with http:// or https:// and contain no spaces",
    "device": "use only letters, digits, '.', '_' and '-' (no spaces), at most 64 characters",
}


class ConnectionCheckError(Exception):
    """The cloud API could not confirm the device key; the message says why, for the user."""


# ---- blocking work (runs in worker threads) ----------------------------------------------------


def grab_frame(spec: str) -> NDArray[np.uint8]:
    """One RGB frame from the source `spec` (opened and closed here); SourceError if none."""
    source = open_source(spec)
    image: NDArray[np.uint8] | None = None
    with opened(source):
        for _ in range(LIVE_WARMUP_FRAMES if source.live else 1):
            frame = source.read()
            if frame is None:
                break
            image = frame.image
    if image is None:
        raise SourceError(f"{source.name} delivered no frame")
    return image


def fetch_device(
    cloud_url: str, api_key: str, timeout_s: float = CONNECTION_TIMEOUT_S
) -> DeviceInfo:
    """`GET {cloud_url}/v1/device` with the key; ConnectionCheckError with a readable reason."""
    try:
        return CloudClient(cloud_url, api_key, timeout_s=timeout_s).device()
    except CloudError as error:
        raise ConnectionCheckError(str(error)) from None


# ---- the dialog --------------------------------------------------------------------------------


class SettingsDialog(QDialog):
    """Edit and save the per-machine configuration (see the module docstring)."""

    def __init__(
        self, config: KioskConfig | None, path: Path, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._path = path
        self._base = config if config is not None else KioskConfig()
        self._saved: KioskConfig | None = None
        self._store_id: int | None = self._base.store_id
        self._store_name = self._base.store_name
        # each request gets a number; a reply to an older request is ignored
        self._preview_request = 0
        self._connection_request = 0
        self._status_origin = ""  # which action wrote the status line
        self.setWindowTitle("StoreSight kiosk settings")
        self.setObjectName("settings_dialog")
        self._build()
        self._load(self._base)

    # ---- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        columns = QHBoxLayout()
        columns.addWidget(self._camera_group(), stretch=3)
        right = QVBoxLayout()
        right.addWidget(self._store_group())
        right.addWidget(self._thresholds_group())
        right.addStretch(1)
        columns.addLayout(right, stretch=2)

        self._status = QLabel()
        self._status.setObjectName("status")
        self._status.setWordWrap(True)
        self._status.setStyleSheet(ERROR_STYLE)
        where = QLabel(f"Saved to {self._path}")
        where.setObjectName("config_path")
        where.setStyleSheet("color: gray;")

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self._save = buttons.button(QDialogButtonBox.StandardButton.Save)
        self._save.setObjectName("save")
        cancel = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setObjectName("cancel")
        # Enter in a field must not save or close the dialog behind the user's back
        for button in (self._save, cancel):
            button.setAutoDefault(False)
            button.setDefault(False)
        self._save.clicked.connect(self._on_save)
        cancel.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(self._status)
        layout.addWidget(where)
        layout.addWidget(buttons)

    def _button(self, text: str, name: str, *, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAutoDefault(False)
        button.setCheckable(checkable)
        return button

    def _camera_group(self) -> QGroupBox:
        group = QGroupBox("Camera and counter zone")
        self._source = QLineEdit()
        self._source.setObjectName("source")
        self._source.setPlaceholderText(SOURCE_PLACEHOLDER)
        self._source.setToolTip(
            "A camera index (0, 1, …), an RTSP/HTTP stream URL, a video file or a folder of "
            "images. Press Preview to check it."
        )
        self._source.returnPressed.connect(self._on_preview)
        self._preview_button = self._button("Preview", "preview")
        self._preview_button.clicked.connect(self._on_preview)
        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("Source"))
        source_row.addWidget(self._source, stretch=1)
        source_row.addWidget(self._preview_button)

        self._preview = PreviewWidget()
        self._preview.setObjectName("preview_widget")
        self._preview.setMinimumSize(480, 270)
        self._preview.show_message("Press Preview to see the camera")
        self._preview.zoneChanged.connect(self._on_zone_changed)

        self._zone_draw = self._button("Draw zone", "zone_draw", checkable=True)
        self._zone_draw.setToolTip(
            "Draw where the paying customer stands: click the corners, double click or Enter "
            "to finish, right click or Backspace to undo a point, Esc to cancel."
        )
        self._zone_draw.toggled.connect(self._preview.set_zone_editing)
        self._preview.zoneEditingChanged.connect(self._zone_draw.setChecked)
        zone_reset = self._button("Reset zone", "zone_reset")
        zone_reset.clicked.connect(self._on_zone_reset)
        self._zone_info = QLabel()
        self._zone_info.setObjectName("zone_info")
        zone_row = QHBoxLayout()
        zone_row.addWidget(QLabel("Counter zone"))
        zone_row.addWidget(self._zone_draw)
        zone_row.addWidget(zone_reset)
        zone_row.addWidget(self._zone_info, stretch=1)

        layout = QVBoxLayout(group)
        layout.addLayout(source_row)
        layout.addWidget(self._preview, stretch=1)
        layout.addLayout(zone_row)
        return group

    def _store_group(self) -> QGroupBox:
        group = QGroupBox("Store and device")
        self._mode = QComboBox()
        self._mode.setObjectName("mode")
        self._mode.addItem("Till (checkout counter)", "till")
        self._mode.addItem("Entrance (door camera)", "entrance")
        self._device = QLineEdit()
        self._device.setObjectName("device")
        self._device.setPlaceholderText("till-1")
        self._cloud_url = QLineEdit()
        self._cloud_url.setObjectName("cloud_url")
        self._cloud_url.setPlaceholderText("https://storesight.example.com")
        self._api_key = QLineEdit()
        self._api_key.setObjectName("api_key")
        self._api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self._api_key.setPlaceholderText("ssk_… (from the store administrator)")
        show_key = QCheckBox("Show")
        show_key.setObjectName("show_key")
        show_key.toggled.connect(self._on_show_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self._api_key, stretch=1)
        key_row.addWidget(show_key)
        # the store belongs to the key: a changed key or server makes it unknown again
        self._cloud_url.textEdited.connect(self._forget_store)
        self._api_key.textEdited.connect(self._forget_store)

        self._test_connection = self._button("Test connection", "test_connection")
        self._test_connection.clicked.connect(self._on_test_connection)
        self._store_id_label = QLabel()
        self._store_id_label.setObjectName("store_id")
        self._store_name_label = QLabel()
        self._store_name_label.setObjectName("store_name")

        form = QFormLayout(group)
        form.addRow("Mode", self._mode)
        form.addRow("Device name", self._device)
        form.addRow("Cloud API URL", self._cloud_url)
        form.addRow("API key", key_row)
        form.addRow("", self._test_connection)
        form.addRow("Store id", self._store_id_label)
        form.addRow("Store name", self._store_name_label)
        return group

    def _thresholds_group(self) -> QGroupBox:
        group = QGroupBox("Thresholds")
        self._detector_range = QComboBox()
        self._detector_range.setObjectName("detector_range")
        self._detector_range.addItem("Short (faces within about 2 m)", "short")
        self._detector_range.addItem("Full (faces up to about 5 m)", "full")
        self._tile = QCheckBox("Also search tiles of the frame for small faces (slower)")
        self._tile.setObjectName("tile")
        self._min_detection_score = _spin(
            "min_detection_score", "detector.min_score", decimals=2, step=0.05
        )
        self._min_shot_quality = _spin(
            "min_shot_quality", "shots.min_quality", decimals=3, step=0.01
        )
        self._binding_window_s = _spin(
            "binding_window_s", "binding_window_s", decimals=1, step=1.0, suffix=" s"
        )
        self._receipts_port = QSpinBox()
        self._receipts_port.setObjectName("receipts_port")
        low, high = _bounds("receipts_port", (0, 65535))
        self._receipts_port.setRange(int(low), int(high))

        form = QFormLayout(group)
        form.addRow("Detector range", self._detector_range)
        form.addRow("", self._tile)
        form.addRow("Min detection score", self._min_detection_score)
        form.addRow("Min shot quality", self._min_shot_quality)
        form.addRow("Binding window", self._binding_window_s)
        form.addRow("Local receipts port", self._receipts_port)
        return group

    def _load(self, config: KioskConfig) -> None:
        self._source.setText(config.source)
        self._mode.setCurrentIndex(max(0, self._mode.findData(config.mode)))
        self._device.setText(config.device)
        self._cloud_url.setText(config.cloud_url)
        self._api_key.setText(config.api_key)
        self._show_store()
        self._preview.set_zone(config.counter_zone)
        self._show_zone_info()
        self._detector_range.setCurrentIndex(
            max(0, self._detector_range.findData(config.detector.range))
        )
        self._tile.setChecked(config.detector.tile)
        self._min_detection_score.setValue(config.detector.min_score)
        self._min_shot_quality.setValue(config.shots.min_quality)
        self._binding_window_s.setValue(config.binding_window_s)
        self._receipts_port.setValue(config.receipts_port)

    # ---- public API ----------------------------------------------------------------------------

    def config(self) -> KioskConfig:
        """The configuration saved by this dialog (only after Save succeeded)."""
        if self._saved is None:
            raise RuntimeError("the settings have not been saved")
        return self._saved

    def path(self) -> Path:
        return self._path

    def show_error(self, text: str) -> None:
        """Show `text` in the red status line (e.g. why the saved file could not be used)."""
        self._report(text, error=True)

    def status_text(self) -> str:
        return self._status.text()

    def preview(self) -> PreviewWidget:
        return self._preview

    def values(self) -> dict[str, Any]:
        """The fields as they are now, as KioskConfig input (not validated); the settings the
        dialog does not show are the configuration's it was opened with."""
        base = self._base.model_dump()
        return {
            **base,
            "source": self._source.text().strip(),
            "mode": self._mode.currentData(),
            "cloud_url": self._cloud_url.text().strip(),
            "api_key": self._api_key.text().strip(),
            "device": self._device.text().strip(),
            "store_id": self._store_id,
            "store_name": self._store_name,
            "counter_zone": self._preview.zone(),
            "detector": {
                **base["detector"],
                "range": self._detector_range.currentData(),
                "tile": self._tile.isChecked(),
                "min_score": self._min_detection_score.value(),
            },
            "shots": {**base["shots"], "min_quality": self._min_shot_quality.value()},
            "binding_window_s": self._binding_window_s.value(),
            "receipts_port": self._receipts_port.value(),
        }

    # ---- feedback ------------------------------------------------------------------------------

    def _report(self, text: str, *, error: bool, origin: str = "") -> None:
        self._status.setStyleSheet(ERROR_STYLE if error else INFO_STYLE)
        self._status.setText(text)
        self._status_origin = origin

    def _clear_report(self, origin: str) -> None:
        """Clear the status line if `origin` wrote it (a fixed preview error, not others)."""
        if self._status_origin == origin:
            self._report("", error=False)

    def _field_widget(self, field: str) -> QWidget | None:
        widgets: dict[str, QWidget] = {
            "source": self._source,
            "mode": self._mode,
            "cloud_url": self._cloud_url,
            "api_key": self._api_key,
            "device": self._device,
            "counter_zone": self._preview,
            "detector.range": self._detector_range,
            "detector.tile": self._tile,
            "detector.min_score": self._min_detection_score,
            "shots.min_quality": self._min_shot_quality,
            "binding_window_s": self._binding_window_s,
            "receipts_port": self._receipts_port,
        }
        return widgets.get(field)

    def _mark_invalid(self, fields: set[str]) -> None:
        for name in FIELD_LABELS:
            widget = self._field_widget(name)
            if widget is not None and not isinstance(widget, PreviewWidget):
                widget.setStyleSheet(INVALID_STYLE if name in fields else "")

    # ---- slots ---------------------------------------------------------------------------------

    def _on_save(self) -> None:
        try:
            config = KioskConfig.model_validate(self.values())
        except ValidationError as error:
            problems = describe_errors(error)
            fields = {_shown_field(e["loc"]) for e in error.errors() if e["loc"]}
            self._mark_invalid(fields)
            first = next((self._field_widget(f) for f in FIELD_LABELS if f in fields), None)
            if first is not None:
                first.setFocus()
            self._report(f"Not saved: {problems}", error=True)
            log.info("settings_invalid", fields=sorted(fields))
            return
        self._mark_invalid(set())
        try:
            save_config(config, self._path)
        except OSError as error:
            self._report(f"Cannot save the settings to {self._path}: {error}", error=True)
            log.warning("settings_save_failed", path=str(self._path), error=str(error))
            return
        self._saved = config
        log.info("settings_saved", path=str(self._path), mode=config.mode, device=config.device)
        self.accept()

    def _on_show_key(self, shown: bool) -> None:
        self._api_key.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        )

    def _on_preview(self) -> None:
        spec = self._source.text().strip()
        if not spec:
            self._report(
                "Camera source: enter a camera index, stream URL, video or folder", error=True
            )
            return
        self._preview_request += 1
        request = self._preview_request
        self._preview_button.setEnabled(False)
        self._preview.show_message(f"Opening {mask_url(spec)}…")

        def done(image: NDArray[np.uint8]) -> None:
            if not shiboken6.isValid(self) or request != self._preview_request:
                return
            self._preview_button.setEnabled(True)
            self._preview.set_frame(image)
            self._preview.show_message("")
            self._clear_report("preview")

        def failed(error: Exception) -> None:
            if not shiboken6.isValid(self) or request != self._preview_request:
                return
            self._preview_button.setEnabled(True)
            self._preview.clear_frame()
            self._preview.show_message("No picture from this source")
            self._report(f"Camera source: {_error_text(error)}", error=True, origin="preview")
            log.info("preview_failed", source=mask_url(spec), error=_error_text(error))

        run_in_thread(lambda: grab_frame(spec), done, failed)

    def _on_zone_changed(self, polygon: list[tuple[float, float]]) -> None:
        self._show_zone_info()
        self._report(f"New counter zone with {len(polygon)} points (Save to keep it)", error=False)

    def _on_zone_reset(self) -> None:
        self._preview.set_zone(DEFAULT_ZONE)
        self._show_zone_info()

    def _show_zone_info(self) -> None:
        self._zone_info.setText(f"{len(self._preview.zone())} points")

    def _forget_store(self) -> None:
        self._store_id = None
        self._store_name = ""
        self._show_store()

    def _show_store(self) -> None:
        self._store_id_label.setText("" if self._store_id is None else str(self._store_id))
        self._store_name_label.setText(self._store_name or "(not tested)")

    def _on_test_connection(self) -> None:
        url = self._cloud_url.text().strip()
        key = self._api_key.text().strip()
        if not _URL.match(url):
            self._report(f"Cloud API URL: {_PATTERN_HINTS['cloud_url']}", error=True)
            return
        if not key:
            self._report("API key: enter this device's API key first", error=True)
            return
        self._connection_request += 1
        request = self._connection_request
        self._test_connection.setEnabled(False)
        self._report(f"Connecting to {mask_url(url)}…", error=False)

        def done(info: DeviceInfo) -> None:
            if not shiboken6.isValid(self) or request != self._connection_request:
                return
            self._test_connection.setEnabled(True)
            self._store_id = info.store_id
            self._store_name = info.store_name
            self._show_store()
            text = (
                f"Connected: this key is {info.kind} device '{info.name}' of store "
                f"{info.store_code} {info.store_name}"
            )
            mode = self._mode.currentData()
            if info.kind != mode:
                text += f" (note: the mode here is {mode})"
            self._report(text, error=False)
            log.info("connection_tested", store_id=info.store_id, device_id=info.device_id)

        def failed(error: Exception) -> None:
            if not shiboken6.isValid(self) or request != self._connection_request:
                return
            self._test_connection.setEnabled(True)
            self._forget_store()
            self._report(f"Test connection: {_error_text(error)}", error=True)
            log.info("connection_test_failed", error=_error_text(error))

        run_in_thread(lambda: fetch_device(url, key), done, failed)


# ---- helpers -----------------------------------------------------------------------------------


def _shown_field(loc: tuple[int | str, ...]) -> str:
    """The setting the dialog shows for an error's location (``detector.min_score`` for
    ``("detector", "min_score")``, ``counter_zone`` for ``("counter_zone", 0, 1)``)."""
    for end in range(len(loc), 0, -1):
        path = location(loc[:end])
        if path in FIELD_LABELS:
            return path
    return location(loc)


def describe_errors(error: ValidationError) -> str:
    """A pydantic error on KioskConfig as "Device name: …; Cloud API URL: …"."""
    parts: list[str] = []
    for item in error.errors():
        field = _shown_field(item["loc"]) if item["loc"] else ""
        label = FIELD_LABELS.get(field, field or "settings")
        message = (
            _PATTERN_HINTS[field]
            if item["type"] in ("string_pattern_mismatch", "string_too_long", "string_too_short")
            and field in _PATTERN_HINTS
            else str(item["msg"])
        )
        parts.append(f"{label}: {message}")
    return "; ".join(parts)


def _error_text(error: BaseException) -> str:
    if isinstance(error, SourceError | ConnectionCheckError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _bounds(field: str, default: tuple[float, float]) -> tuple[float, float]:
    """The ge/le limits pydantic enforces on a KioskConfig setting (a dotted path), so the
    spin boxes match."""
    low, high = default
    info = setting(tuple(field.split(".")))
    assert info is not None, field
    for constraint in info.metadata:
        low = float(getattr(constraint, "ge", low))
        high = float(getattr(constraint, "le", high))
    return low, high


def _spin(name: str, field: str, *, decimals: int, step: float, suffix: str = "") -> QDoubleSpinBox:
    """A spin box named `name` for the setting `field` (a dotted path), within its limits."""
    spin = QDoubleSpinBox()
    spin.setObjectName(name)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    low, high = _bounds(field, (0.0, 1.0))
    spin.setRange(low, high)
    if suffix:
        spin.setSuffix(suffix)
    return spin


def _salvage(path: Path) -> KioskConfig | None:
    """What can be kept of an invalid configuration file: the valid settings, others default."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data = upgraded(data)
    while True:
        try:
            return KioskConfig.model_validate(data)
        except ValidationError as error:
            if not any(_drop(data, e["loc"]) for e in error.errors()):
                return None


def _drop(data: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Remove the setting at `loc` from `data` (the innermost key it names there); False if
    `data` holds nothing there."""
    inner: object = data
    for depth, part in enumerate(loc):
        if not isinstance(inner, dict) or part not in inner:
            return False
        if depth == len(loc) - 1 or not isinstance(inner[part], dict):
            del inner[part]
            return True
        inner = inner[part]
    return False


def config_or_dialog(
    path: Path | None = None, parent: QWidget | None = None
) -> KioskConfig | SettingsDialog:
    """The saved configuration, or the settings dialog to show (not yet shown).

    First start (no file): a dialog with the defaults. A file that cannot be used: a dialog
    with what could be kept of it and the reason in the status line; the file is only
    replaced when the user saves.
    """
    path = path or config_path()
    try:
        config = load_config(path)
    except ConfigFileError as error:
        log.warning("config_unusable", path=str(path), error=str(error))
        dialog = SettingsDialog(_salvage(path), path, parent)
        dialog.show_error(f"{error}. Correct the settings and save.")
        return dialog
    if config is not None:
        return config
    log.info("config_first_start", path=str(path))
    return SettingsDialog(None, path, parent)


def ensure_config(path: Path | None = None, parent: QWidget | None = None) -> KioskConfig | None:
    """The configuration to run with: loaded, or entered in the dialog; None if cancelled."""
    found = config_or_dialog(path, parent)
    if isinstance(found, KioskConfig):
        return found
    if found.exec() == QDialog.DialogCode.Accepted:
        return found.config()
    log.info("settings_cancelled", path=str(found.path()))
    return None
