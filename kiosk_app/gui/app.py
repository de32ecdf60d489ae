"""Entry points of the desktop app: the cashier (or entrance) window, settings, staff alerts."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from kiosk_app.config_loader import layered
from kiosk_app.kiosk_config import ConfigFileError, KioskConfig, config_path, load_config

if TYPE_CHECKING:
    from kiosk_app.gui.cashier_window import CashierWindow

log = structlog.get_logger(__name__)


def application() -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(sys.argv[:1])
    app.setApplicationName("StoreSight")
    app.setOrganizationName("StoreSight")
    return app


def run_cashier(
    path: Path | None = None,
    overrides: dict[str, object] | None = None,
    *,
    full_screen: bool = False,
    screenshot: Path | None = None,
) -> int:
    """The till or entrance window; the first start (no configuration yet) opens settings.
    `full_screen`: the till's kiosk mode, no window decorations. `screenshot`: save the
    window once it shows the camera (or an error) and quit."""
    from kiosk_app.gui.cashier_window import CashierWindow
    from kiosk_app.gui.service_host import ServiceHost
    from kiosk_app.gui.settings_dialog import ensure_config

    app = application()
    path = path or config_path()
    config = ensure_config(path)
    if config is None:
        return 1
    config = layered(config, overrides)  # the environment, then the command line
    state: dict[str, CashierWindow] = {}

    def open_settings(parent: QWidget) -> None:
        from kiosk_app.gui.settings_dialog import SettingsDialog

        try:  # the file's settings, not this session's command-line overrides
            saved = load_config(path) or state["window"].host.config
        except ConfigFileError:
            saved = state["window"].host.config
        dialog = SettingsDialog(saved, path, parent)
        if dialog.exec() == QDialog.DialogCode.Accepted:  # as a restart would load it
            start(layered(dialog.config(), overrides), replace=True)

    def start(config: KioskConfig, *, replace: bool = False) -> None:
        old = state.get("window")
        window = CashierWindow(ServiceHost(config), open_settings=open_settings)
        if old is not None and replace:
            window.setGeometry(old.geometry())
            old.close()  # stops its service first: one camera, one receipt port
        state["window"] = window
        if full_screen:
            window.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
            window.showFullScreen()
        else:
            window.show()
        window.host.start()

    start(config)
    if screenshot is not None:
        _screenshot_when_shown(state["window"], screenshot)
    return app.exec()


def _screenshot_when_shown(window: CashierWindow, path: Path, settle_s: float = 2.0) -> None:
    """Once the window shows a processed frame (or an error) for `settle_s`, save it to
    `path` and quit: exit status 0 for a frame, 1 for an error."""
    state: dict[str, float | str] = {}

    def failed(text: str) -> None:
        state.setdefault("error", text)

    def poll() -> None:
        now = time.monotonic()
        if "since" not in state and (window.host.latest() is not None or "error" in state):
            state["since"] = now
        since = state.get("since")
        if isinstance(since, float) and now - since >= settle_s:
            timer.stop()
            path.parent.mkdir(parents=True, exist_ok=True)
            saved = window.grab().save(str(path))
            log.info("screenshot_saved", path=str(path), saved=saved, error="error" in state)
            window.close()  # stops the service and its threads before the app ends
            QApplication.exit(0 if saved and "error" not in state else 1)

    window.host.failed.connect(failed)
    timer = QTimer(window)
    timer.timeout.connect(poll)
    timer.start(200)


def run_settings(path: Path | None = None) -> int:
    from kiosk_app.gui.settings_dialog import SettingsDialog, config_or_dialog

    application()
    path = path or config_path()
    found = config_or_dialog(path)
    dialog = found if not isinstance(found, KioskConfig) else SettingsDialog(found, path)
    return 0 if dialog.exec() == QDialog.DialogCode.Accepted else 1


def run_staff_window(path: Path | None = None) -> int:
    from kiosk_app.gui.settings_dialog import ensure_config
    from kiosk_app.gui.staff_window import run_staff

    application()
    config = ensure_config(path or config_path())
    if config is None:
        return 1
    return run_staff(layered(config))  # the environment over the file, as for the till
