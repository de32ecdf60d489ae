"""The cashier's window: live preview, the VIP card, the receipt field, opt-out, status.

Everything here runs on the GUI thread and only draws and reacts. The pipeline runs in the
service's threads (`ServiceHost`); a timer pulls the newest frame every `FRAME_INTERVAL_MS`
and the longest gap between two of its ticks is kept (`max_tick_gap_ms`): the measure of
whether the window ever froze. In entrance mode the receipt side is replaced by the visitor
count and the VIP arrivals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from contract import CheckoutResponse, CustomerOut, DecisionAnswer, MembershipRequest
from kiosk_app.cloud_client import CloudError
from kiosk_app.events import CheckoutQueued, KioskEvent, ScanCaptured, SightingReported
from kiosk_app.gui.preview import OverlayFace, PreviewWidget
from kiosk_app.gui.scanned_number import parse_scanned_number
from kiosk_app.gui.service_host import HostStatus, ServiceHost, describe_event
from kiosk_app.gui.vip_card import EnrolDialog, VipCardWidget
from kiosk_app.gui.workers import run_in_thread
from kiosk_app.pipeline import FrameResult

log = structlog.get_logger(__name__)

FRAME_INTERVAL_MS = 40
#: the card clears this long after its customer was last seen by the camera
LEAVE_S = 3.0
#: a card with no face behind it (nobody at the counter, opted out) stays this long
FACELESS_CARD_S = 20.0
ACTIVITY_LINES = 50
CLOUD_TEXT = {
    "online": "cloud: online",
    "offline": "cloud: OFFLINE (checkouts wait in the outbox)",
    "refused": "cloud: key refused",
    "unknown": "cloud: …",
}


class TickMonitor:
    """The longest gap between consecutive ticks of a GUI timer: how long the loop stalled."""

    def __init__(self) -> None:
        self._clock = QElapsedTimer()
        self.ticks = 0
        self.max_gap_ms = 0.0
        self.gaps_ms: list[float] = []
        self._last: int | None = None

    def tick(self) -> None:
        if not self._clock.isValid():
            self._clock.start()
        now = self._clock.nsecsElapsed()
        if self._last is not None:
            gap = (now - self._last) / 1e6
            self.max_gap_ms = max(self.max_gap_ms, gap)
            if len(self.gaps_ms) < 1_000_000:
                self.gaps_ms.append(gap)
        self._last = now
        self.ticks += 1

    def reset(self) -> None:
        self.ticks, self.max_gap_ms, self._last = 0, 0.0, None
        self.gaps_ms = []


class CashierWindow(QMainWindow):
    def __init__(
        self,
        host: ServiceHost,
        *,
        open_settings: Callable[[QWidget], Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host
        self.entrance = host.config.mode == "entrance"
        self._open_settings = open_settings
        self.setWindowTitle(
            f"StoreSight — {'entrance' if self.entrance else 'till'} {host.config.device}"
            + (f" · {host.config.store_name}" if host.config.store_name else "")
        )
        self.resize(1280, 760)
        self.ticks = TickMonitor()
        self.frames_shown = 0
        self._last_index: int | None = None
        self._card_seen_at = 0.0
        self._card_at = 0.0
        self.visitors_today = 0
        self._build()
        host.started.connect(self._on_started)
        host.failed.connect(self.show_error)
        host.pipeline_event.connect(self._on_event)
        host.card.connect(self._on_card)
        host.status.connect(self._on_status)
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # ---- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.error = QLabel()
        self.error.setObjectName("error_banner")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("background:#b00020;color:white;padding:6px;font-weight:600")
        self.error.hide()
        self.preview = PreviewWidget()
        self.preview.set_zone(self.host.config.counter_zone)
        self.preview.show_message("Starting the camera and the face models…")

        side = QWidget()
        column = QVBoxLayout(side)
        self.card = VipCardWidget()
        self.card.enrolRequested.connect(self._ask_enrol)
        self.card.confirmRequested.connect(lambda decision: self.decide(decision, confirm=True))
        self.card.rejectRequested.connect(lambda decision: self.decide(decision, confirm=False))
        self.visitors = QLabel("Visitors today: 0")
        self.visitors.setObjectName("visitors")
        self.visitors.setStyleSheet("font-size:22pt;font-weight:600")
        self.receipt = QLineEdit()
        self.receipt.setObjectName("receipt_number")
        self.receipt.setPlaceholderText("Scan or type the receipt number, then Enter")
        self.receipt.returnPressed.connect(self._scanned)
        self.opt_out = QPushButton("Customer opts out")
        self.opt_out.setObjectName("opt_out")
        self.opt_out.setToolTip(
            "The next receipt is sent without the customer's face; if their card is shown, "
            "their face data is deleted."
        )
        self.opt_out.setCheckable(True)
        self.opt_out.clicked.connect(self._opt_out_clicked)
        self.activity = QListWidget()
        self.activity.setObjectName("activity")
        if self.entrance:
            column.addWidget(self.visitors)
            column.addWidget(QLabel("Arrivals"))
            self.card.hide()
            self.receipt.hide()
            self.opt_out.hide()
        else:
            column.addWidget(self.card, 3)
            row = QHBoxLayout()
            row.addWidget(self.receipt, 1)
            row.addWidget(self.opt_out)
            column.addLayout(row)
            self.visitors.hide()
        column.addWidget(self.activity, 1)

        splitter = QSplitter()
        splitter.addWidget(self.preview)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.error)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        bar = self.statusBar()
        self.fps_label = QLabel("camera: starting")
        self.dropped_label = QLabel("dropped: 0")
        self.cloud_label = QLabel(CLOUD_TEXT["unknown"])
        self.outbox_label = QLabel("outbox: 0")
        self.pos_label = QLabel("")
        for name, label in (
            ("fps", self.fps_label),
            ("dropped", self.dropped_label),
            ("cloud", self.cloud_label),
            ("outbox", self.outbox_label),
            ("pos", self.pos_label),
        ):
            label.setObjectName(f"status_{name}")
            bar.addPermanentWidget(label)
        open_settings = self._open_settings
        if open_settings is not None:
            action = QAction("Settings…", self)
            action.triggered.connect(lambda: open_settings(self))
            self.menuBar().addAction(action)

    # ---- the timer: newest frame, card presence -----------------------------------------------

    def _tick(self) -> None:
        self.ticks.tick()
        latest = self.host.latest()
        if latest is None:
            return
        frame, result = latest
        now = time.monotonic()
        if self.card.shown_for_track is not None and any(
            f.track_id == self.card.shown_for_track for f in result.faces
        ):
            self._card_seen_at = now
        self._maybe_clear_card(now)
        if frame.index == self._last_index:
            return
        self._last_index = frame.index
        self.preview.set_frame(frame.image, overlays(result, self.card.shown_for_track))
        self.frames_shown += 1

    def _maybe_clear_card(self, now: float) -> None:
        if not self.card.showing:
            return
        if self.card.shown_for_track is not None:
            if now - self._card_seen_at > LEAVE_S:
                self.card.clear("Waiting for the next customer…")
        elif now - self._card_at > FACELESS_CARD_S:
            self.card.clear("Waiting for the next customer…")

    # ---- service signals ---------------------------------------------------------------------

    def _on_started(self) -> None:
        self.preview.show_message("")
        url = self.host.receipts_url
        self.pos_label.setText(f"POS: {url}" if url else "")
        self.note("kiosk started")

    def _on_event(self, event: KioskEvent) -> None:
        if isinstance(event, CheckoutQueued | ScanCaptured) and event.opted_out:
            self.opt_out.setChecked(False)
            self.opt_out.setText("Customer opts out")
        if isinstance(event, SightingReported):
            self.visitors_today = event.visitors_today
            self.visitors.setText(f"Visitors today: {self.visitors_today}")
        line = describe_event(event)
        if line is not None:
            self.note(line)

    def _on_card(self, response: CheckoutResponse, track_id: int | None) -> None:
        now = time.monotonic()
        self._card_at = self._card_seen_at = now
        self.card.show_card(response.card, track_id)
        card = response.card
        if card.status == "possible_member":
            self.note("card: possible member, ask the customer")
            return
        who = card.member.name if card.member else f"{card.status} customer"
        visits = f"{card.visit_count} visit{'s' if card.visit_count != 1 else ''}"
        self.note(f"card: {who}, {visits}, {card.purchase_level}")

    def _on_status(self, status: HostStatus) -> None:
        capture = status.service.capture
        if status.service.source_ended:
            self.fps_label.setText("camera: ended")
        else:
            self.fps_label.setText(f"camera: {status.fps:.1f} fps")
        self.dropped_label.setText(f"dropped: {capture.dropped}")
        cloud = CLOUD_TEXT.get(status.cloud, status.cloud)
        self.cloud_label.setText(cloud)
        self.cloud_label.setToolTip(status.cloud_detail)
        colour = {"online": "#1b7f3b", "offline": "#b00020", "refused": "#b00020"}
        self.cloud_label.setStyleSheet(f"color:{colour.get(status.cloud, '#555')}")
        pending = status.service.outbox_pending
        dead = status.service.outbox_dead
        text = "outbox: ?" if pending is None else f"outbox: {pending}"
        if dead:
            text += f" ({dead} failed)"
        self.outbox_label.setText(text)

    # ---- cashier actions ---------------------------------------------------------------------

    def _scanned(self) -> None:
        text = self.receipt.text()
        number = parse_scanned_number(text)
        if number is None:
            self.show_error(
                f"{text.strip()!r} is not a receipt number (1-64 letters, digits or hyphens)"
            )
            return
        try:
            self.host.scan(number)
        except RuntimeError as error:
            self.show_error(str(error))
            return
        self.receipt.clear()
        self.error.hide()

    def _opt_out_clicked(self, checked: bool) -> None:
        card = self.card.card
        if card is not None and card.customer_id is not None:
            self.opt_out.setChecked(False)
            if self.confirm(
                "Delete this customer's face data now? Their purchase stays, without a face."
            ):
                self.delete_customer(card.customer_id)
            return
        if checked:
            self.host.opt_out.arm()
            self.opt_out.setText("Opt-out armed: next receipt")
            self.note("opt-out armed: the next receipt is sent without a face")
        else:
            self.host.opt_out.cancel()
            self.opt_out.setText("Customer opts out")

    def confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, "StoreSight", question)
        return answer == QMessageBox.StandardButton.Yes

    def delete_customer(self, customer_id: int) -> None:
        client = self.host.cloud()

        def deleted(_: object) -> None:
            self.card.clear("Face data deleted")
            self.note(f"customer {customer_id}: face data deleted")

        run_in_thread(
            lambda: client.delete_customer(customer_id),
            deleted,
            lambda error: self.show_error(f"could not delete the face data: {error}"),
        )

    def _ask_enrol(self, customer_id: int) -> None:
        dialog = EnrolDialog(customer_id, self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.request is not None:
            self.enrol(customer_id, dialog.request)

    def enrol(self, customer_id: int, request: MembershipRequest) -> None:
        client = self.host.cloud()

        def enrolled(customer: CustomerOut) -> None:
            if customer.member is not None:
                if self.card.card is not None and self.card.card.customer_id == customer_id:
                    self.card.set_member(customer.member)
                self.note(f"{customer.member.name} enrolled: VIP {customer.member.vip_number}")

        run_in_thread(
            lambda: client.enrol(customer_id, request),
            enrolled,
            lambda error: self.show_error(f"enrolment failed: {error}"),
        )

    def decide(self, decision_id: int, *, confirm: bool) -> None:
        """Send the cashier's answer to a possible-member card on a worker thread; the card
        the cloud answers replaces it (if the card still asks about that decision)."""
        client = self.host.cloud()
        verb = "confirm" if confirm else "reject"
        self.card.set_deciding()
        self.statusBar().showMessage("Sending the answer to the cloud…")

        def answered(answer: DecisionAnswer) -> None:
            confirmed = answer.outcome == "confirmed"
            text = "member confirmed" if confirmed else "not the member: anonymous customer"
            self.statusBar().showMessage(f"Answer recorded: {text}", 10_000)
            self.note(f"decision {decision_id}: {text}")
            if self.card.decision_id == answer.decision_id:
                self._card_at = time.monotonic()
                self.card.show_card(answer.card, self.card.shown_for_track)

        def failed(error: Exception) -> None:
            status = error.status if isinstance(error, CloudError) else None
            # offline, a timeout, a server error: asking again may work; a refusal will not
            retry = status is None or status >= 500 or status == 429
            message = f"Could not {verb}: {error}."
            self.statusBar().showMessage(message, 15_000)
            self.note(message)
            if self.card.decision_id == decision_id:
                self.card.decision_failed(message, retry=retry)

        request = client.confirm_decision if confirm else client.reject_decision
        run_in_thread(lambda: request(decision_id), answered, failed)

    # ---- helpers -----------------------------------------------------------------------------

    def note(self, line: str) -> None:
        self.activity.insertItem(0, f"{time.strftime('%H:%M:%S')}  {line}")
        while self.activity.count() > ACTIVITY_LINES:
            self.activity.takeItem(self.activity.count() - 1)

    def show_error(self, text: str) -> None:
        log.warning("shown_error", error=text)
        self.error.setText(text)
        self.error.show()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._timer.stop()
        self.preview.show_message("Stopping…")
        self.host.stop()
        super().closeEvent(event)


def overlays(result: FrameResult, highlight: int | None = None) -> list[OverlayFace]:
    faces = []
    for face in result.faces:
        box = face.box
        label = "card" if face.track_id == highlight else ""
        faces.append(OverlayFace(face.track_id, (box.x1, box.y1, box.x2, box.y2), face.role, label))
    return faces
