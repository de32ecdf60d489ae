"""`make screenshots`: the real windows on a real clip with the real cloud, saved as PNG.

1. A fresh cloud (SQLite under var/screenshots) as its own process; one headless pass over
   the clip makes its people customers, and the first becomes a VIP member (as in the demo).
2. The cashier window on the clip; a simulated cashier scans each customer's receipt. When
   the VIP member's card appears: `cashier.png` (else the last card shown).
3. The cashier window again, the next customer's card a "possible member" question with
   Confirm / Not me: `cashier-possible-member.png`. The card is the cloud's when it answers
   one; a cloud that does not decide so yet (no open-set decisions) gets the question staged
   on the card of the customer it answered for (asking about a member named Alex).
4. The settings dialog with the camera preview and the counter zone: `settings.png`.
5. The staff window following the store's alerts while the entrance camera (headless, the
   same clip) sees the VIP walk in: the pop-up is captured from the screen: `staff.png`.

Meant to run under Xvfb (`make screenshots`); under the offscreen platform the pop-up is
composed onto the window's picture instead of grabbed from a screen.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import QEventLoop, QPoint, QTimer
from PySide6.QtGui import QGuiApplication, QPainter, QPixmap
from PySide6.QtWidgets import QWidget

from contract import MembershipRequest, PossibleMember, Preferences
from demo import run as demo
from demo.cashier import ScanningCashier
from kiosk_app.alerts import AlertStream
from kiosk_app.events import EventCollector
from kiosk_app.gui.app import application
from kiosk_app.gui.cashier_window import CashierWindow
from kiosk_app.gui.service_host import ServiceHost
from kiosk_app.gui.settings_dialog import SettingsDialog
from kiosk_app.gui.staff_window import StaffWindow
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.service import KioskService

ROOT = Path("var/screenshots")


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while time.monotonic() < deadline:
        if condition():
            return True
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    return False


def pause(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget: QWidget, path: Path) -> None:
    widget.grab().save(str(path))
    print(f"wrote {path}")


def cashier_shot(config: KioskConfig, out: Path) -> None:
    """The first returning customer's card; if they are not a member yet, the cashier enrols
    them from the card (with consent) and the card turns into the member's VIP card."""
    host = ServiceHost(config)
    window = CashierWindow(host)
    window.resize(1400, 820)
    window.show()
    cashier = ScanningCashier(window)
    scans = QTimer()
    scans.setInterval(200)
    scans.timeout.connect(cashier.step)
    host.start()
    scans.start()

    def returning() -> bool:
        card = window.card.card
        return card is not None and card.status == "returning" and card.customer_id is not None

    found = wait_until(returning, 180)
    scans.stop()  # no more receipts: this customer's card stays on screen
    wait_until(lambda: False, 3)  # checkouts already on their way arrive
    card = window.card.card
    if found and card is not None and card.customer_id is not None and card.member is None:
        window.enrol(
            card.customer_id,
            MembershipRequest(
                vip_number="VIP-0042", name="Alex Morgan", level="gold", consent=True
            ),
        )
        wait_until(lambda: window.card.card is not None and window.card.card.member is not None, 30)
    if not found:
        print("warning: no returning customer was carded; the window as it is")
    pause(500)
    save(window, out / "cashier.png")
    window.close()


def possible_member_shot(config: KioskConfig, out: Path) -> None:
    """A customer's card asking "Are you Alex?" with Confirm and Not me (see the docstring)."""
    host = ServiceHost(config)
    window = CashierWindow(host)
    window.resize(1400, 820)
    window.show()
    cashier = ScanningCashier(window, prefix="Q")
    scans = QTimer()
    scans.setInterval(200)
    scans.timeout.connect(cashier.step)
    host.start()
    scans.start()

    def carded() -> bool:  # a card for a customer the camera saw at the counter
        return window.card.card is not None and window.card.shown_for_track is not None

    found = wait_until(carded, 180)
    scans.stop()  # no more receipts: this customer's card stays on screen
    wait_until(lambda: False, 3)  # checkouts already on their way arrive
    card = window.card.card
    if found and card is not None and card.status != "possible_member":
        print("note: the cloud answered no possible member; the question is staged on the card")
        decision = card.decision_id if card.decision_id is not None else 1
        staged = card.model_copy(
            update={
                "customer_id": None,
                "status": "possible_member",
                "visit_count": 0,
                "member": None,
                "purchase_level": "new",
                "lifetime_spend": Decimal(0),
                "preferences": Preferences(categories=[], brands=[]),
                "last_visits": [],
                "recommendations": [],
                "demographics": None,
                "decision_id": decision,
                "possible_member": PossibleMember(decision_id=decision, first_name="Alex"),
            }
        )
        window.card.show_card(staged, window.card.shown_for_track)
    if not found:
        print("warning: no customer was carded; the window as it is")
    pause(500)
    save(window, out / "cashier-possible-member.png")
    window.close()


def settings_shot(config: KioskConfig, out: Path) -> None:
    dialog = SettingsDialog(config, ROOT / "kiosk.json")
    dialog.show()
    preview_button = dialog.findChild(QWidget, "preview")
    if preview_button is not None:
        preview_button.click()  # type: ignore[attr-defined]
    test = dialog.findChild(QWidget, "test_connection")
    if test is not None:
        test.click()  # type: ignore[attr-defined]
    wait_until(lambda: dialog.preview().frame_size() is not None, 60)
    pause(1500)
    save(dialog, out / "settings.png")
    dialog.close()


def staff_shot(config: KioskConfig, entrance_key: str, out: Path) -> None:
    window = StaffWindow(store_name="Demo store", toast_timeout_ms=60_000)
    window.resize(980, 560)
    window.move(420, 300)  # the pop-up appears at the screen's corner, over the window's
    window.attach(
        lambda on_arrival, on_status: AlertStream(
            config.cloud_url, config.api_key, None, on_arrival, on_status
        )
    )
    window.show()
    wait_until(lambda: window.stream_state == "connected", 30)
    events = EventCollector()
    door = config.model_copy(
        update={
            "mode": "entrance",
            "api_key": entrance_key,
            "device": "door-1",
            "data_dir": ROOT / "entrance",
        }
    )
    service = KioskService(door, events)
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    wait_until(lambda: bool(window.toasts.visible_toasts()), 180)
    pause(800)
    path = out / "staff.png"
    toasts = window.toasts.visible_toasts()
    if QGuiApplication.platformName() == "offscreen":  # no screen to grab: compose
        picture = window.grab()
        painter = QPainter(picture)
        for toast in toasts:
            painter.drawPixmap(
                QPoint(
                    picture.width() - toast.width() - 16, picture.height() - toast.height() - 16
                ),
                toast.grab(),
            )
        painter.end()
    else:
        screen = QGuiApplication.primaryScreen()
        picture = screen.grabWindow(0)
        right = max([window.frameGeometry().right()] + [t.geometry().right() for t in toasts])
        bottom = max([window.frameGeometry().bottom()] + [t.geometry().bottom() for t in toasts])
        left = max(0, window.frameGeometry().left() - 20)
        top = max(0, window.frameGeometry().top() - 20)
        width = min(picture.width(), right + 20) - left
        height = min(picture.height(), bottom + 20) - top
        picture = picture.copy(left, top, width, height)
    QPixmap(picture).save(str(path))
    print(f"wrote {path} ({len(toasts)} pop-up(s))")
    thread.join(timeout=60)
    service.stop()
    window.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    clip = demo.pick_source(None)
    shutil.rmtree(ROOT, ignore_errors=True)
    (ROOT / "logs").mkdir(parents=True)
    demo.DEMO_DIR = ROOT
    app = application()
    database = f"sqlite:///{ROOT / 'cloud.db'}"
    keys = demo.setup_cloud(database)
    port = demo.free_port()
    cloud_url = f"http://127.0.0.1:{port}"
    process = demo.start_cloud(database, port, ROOT / "logs")
    try:
        first = EventCollector()
        demo.run_pass(1, clip, cloud_url, keys, first)  # the clip's people become customers
        if demo.enrol_first_member(cloud_url, keys["till"], first) is None:
            print("warning: nobody was carded in the first pass; no VIP to show")
        config = KioskConfig(
            source=clip,
            cloud_url=cloud_url,
            api_key=keys["till"],
            device="till-1",
            store_name="Demo store",
            receipts_port=0,
            data_dir=ROOT / "till",
            detector=demo.kiosk_detector(clip),
        )
        cashier_shot(config, args.out)
        possible_member_shot(config, args.out)
        settings_shot(config, args.out)
        staff_shot(config, keys["entrance"], args.out)
    finally:
        process.terminate()
        process.wait(timeout=30)
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
