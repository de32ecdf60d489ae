"""Entry points of the desktop app: the cashier (or entrance) window, settings, staff alerts."""

from __future__ import annotations

import sys
from pathlib import Path

import structlog
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from kiosk_app.config_loader import layered
from kiosk_app.kiosk_config import ConfigFileError, KioskConfig, config_path, load_config

log = structlog.get_logger(__name__)


def application() -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(sys.argv[:1])
    app.setApplicationName("StoreSight")
    app.setOrganizationName("StoreSight")
    return app


def run_cashier(path: Path | None = None, overrides: dict[str, object] | None = None) -> int:
    """The till or entrance window; the first start (no configuration yet) opens settings."""
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
        window.show()
        window.host.start()

    start(config)
    return app.exec()


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
