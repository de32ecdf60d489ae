"""The staff window: today's VIP arrivals as they happen, with a pop-up for each.

It follows the store's alert stream (`kiosk_app.alerts.AlertStream`, a thread of its own) and
can run on its own (`storesight-kiosk staff` calls `run_staff`). The stream's callbacks only
emit Qt signals; the connections are queued, so every widget is touched on the GUI thread.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol

import structlog
from PySide6.QtCore import QCoreApplication, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from contract import VipArrival
from kiosk_app.alerts import AlertStream, ArrivalCallback, StatusCallback
from kiosk_app.gui.toast import DEFAULT_TIMEOUT_MS, ToastManager
from kiosk_app.kiosk_config import KioskConfig

log = structlog.get_logger(__name__)

COLUMNS = ("Time", "Name", "VIP number", "Level")
#: the face shown beside an arrival's time in the table
ROW_FACE_SIDE = 48

_STATE_TEXT = {
    "connecting": "Connecting to the alert stream…",
    "connected": "Live: VIP arrivals appear here",
    "offline": "Offline: reconnecting…",
    "unauthorised": "The cloud refused this device's key",
    "error": "Alert stream error",
    "stopped": "Not following alerts",
}


class AlertSource(Protocol):
    """What the window needs of a stream (an `AlertStream`, or a test's stand-in)."""

    def start(self) -> None: ...

    def stop(self, timeout_s: float = ...) -> bool: ...


#: Builds a stream that reports to the given callbacks (called on the stream's thread).
StreamFactory = Callable[[ArrivalCallback, StatusCallback], AlertSource]


def face_pixmap(arrival: VipArrival) -> QPixmap | None:
    """The member's face the entrance saw (None when the alert carries none or it is unreadable)."""
    if not arrival.face_jpeg_base64:
        return None
    try:
        raw = base64.b64decode(arrival.face_jpeg_base64, validate=True)
    except (binascii.Error, ValueError):
        return None
    pixmap = QPixmap()
    return pixmap if pixmap.loadFromData(raw, "JPEG") else None


def _local(at: datetime) -> datetime:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone()


class StaffWindow(QMainWindow):
    """Today's VIP arrivals, newest first, and a toast for each new one."""

    #: emitted from the stream's thread; delivered to the GUI thread (queued connections)
    arrival_received = Signal(object)  # VipArrival
    status_received = Signal(str, str)  # state, detail

    def __init__(
        self,
        *,
        store_name: str = "",
        toast_timeout_ms: int = DEFAULT_TIMEOUT_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("StoreSight staff" + (f" — {store_name}" if store_name else ""))
        self.resize(640, 420)
        self.stream_state = "stopped"
        self.stream_detail = ""
        self.arrivals: list[VipArrival] = []  # today's, newest first
        self._day: date | None = None
        self._stream: AlertSource | None = None
        self.toasts = ToastManager(self, timeout_ms=toast_timeout_ms)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.heading = QLabel("VIP arrivals today: 0")
        self.heading.setObjectName("arrivalsHeading")
        layout.addWidget(self.heading)
        self.table = QTableWidget(0, len(COLUMNS), central)
        self.table.setObjectName("arrivalsTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setIconSize(QSize(ROW_FACE_SIDE, ROW_FACE_SIDE))
        self.table.verticalHeader().setDefaultSectionSize(ROW_FACE_SIDE + 6)
        layout.addWidget(self.table)
        self.setCentralWidget(central)
        self.status_label = QLabel(_STATE_TEXT["stopped"])
        self.status_label.setObjectName("streamStatus")
        self.statusBar().addWidget(self.status_label, 1)

        queued = Qt.ConnectionType.QueuedConnection
        self.arrival_received.connect(self.show_arrival, queued)
        self.status_received.connect(self.set_stream_state, queued)

    # --- the stream -------------------------------------------------------------------------

    def attach(self, factory: StreamFactory) -> AlertSource:
        """Build a stream reporting to this window, and start it (any previous one stops)."""
        self.detach()
        stream = factory(self._from_stream_arrival, self._from_stream_status)
        self._stream = stream
        stream.start()
        return stream

    def detach(self, timeout_s: float = 5.0) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop(timeout_s)

    def _from_stream_arrival(self, arrival: VipArrival) -> None:
        """On the stream's thread: only emit."""
        try:
            self.arrival_received.emit(arrival)
        except RuntimeError:  # the window is already gone
            log.debug("staff_window_gone", event_id=arrival.event_id)

    def _from_stream_status(self, state: str, detail: str) -> None:
        try:
            self.status_received.emit(state, detail)
        except RuntimeError:
            log.debug("staff_window_gone", state=state)

    # --- on the GUI thread ------------------------------------------------------------------

    def set_stream_state(self, state: str, detail: str) -> None:
        self.stream_state, self.stream_detail = state, detail
        text = _STATE_TEXT.get(state, state)
        if state in ("offline", "unauthorised", "error") and detail:
            text = f"{text} ({detail})"
        self.status_label.setText(text)
        self.status_label.setToolTip(detail)

    def show_arrival(self, arrival: VipArrival) -> None:
        """Add the arrival to today's table (top row) and pop a toast."""
        if any(a.event_id == arrival.event_id for a in self.arrivals):
            return  # already shown
        at = _local(arrival.at)
        face = face_pixmap(arrival)
        today = datetime.now().astimezone().date()
        if self._day != today:  # a new day: yesterday's arrivals go
            self._day = today
            self.arrivals.clear()
            self.table.setRowCount(0)
        if at.date() == today:
            self.arrivals.insert(0, arrival)
            self.table.insertRow(0)
            values = (at.strftime("%H:%M:%S"), arrival.name, arrival.vip_number, arrival.level)
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == 0 and face is not None:  # beside the time: staff find the person
                    item.setIcon(QIcon(face))
                self.table.setItem(0, column, item)
            self.heading.setText(f"VIP arrivals today: {len(self.arrivals)}")
        self.toasts.show_toast(
            "VIP arrival",
            [
                arrival.name,
                f"{arrival.vip_number} · {arrival.level} member",
                f"arrived at {at.strftime('%H:%M')}",
            ],
            image=face,
        )
        log.info("staff_vip_arrival_shown", event_id=arrival.event_id, vip=arrival.vip_number)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.detach(timeout_s=1.0)  # prompt: a live connection is interrupted, not waited on
        self.toasts.clear()
        super().closeEvent(event)


def run_staff(config: KioskConfig) -> int:
    """The staff window on its own, following `config`'s store; returns the exit code."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    QCoreApplication.setApplicationName("StoreSight staff")
    if not config.api_key:
        log.error("staff_no_api_key", cloud_url=config.cloud_url)
        QMessageBox.critical(
            None,
            "StoreSight staff",
            "This device has no API key yet. Open the kiosk settings, enter the device key "
            "and test the connection, then start the staff window again.",
        )
        return 2
    window = StaffWindow(store_name=config.store_name)

    def factory(on_arrival: ArrivalCallback, on_status: StatusCallback) -> AlertSource:
        return AlertStream(config.cloud_url, config.api_key, config.store_id, on_arrival, on_status)

    window.attach(factory)
    window.show()
    log.info("staff_window_started", cloud_url=config.cloud_url, store=config.store_id)
    try:
        code = app.exec()
    finally:
        window.detach()
        window.toasts.clear()
    log.info("staff_window_closed", code=code)
    return code
