"""The cashier window end to end: real clip, real models, real cloud API over HTTP.

A receipt number is scanned into the window's receipt field while the customer stands at the
counter, the POS then posts the receipt to the till's local endpoint, and the VIP card the
cloud answers appears; the cashier enrols the customer as a member from the card; the
opt-out button sends the next receipt without a face.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from contract import MembershipRequest
from kiosk_app.events import CheckoutQueued, KioskEvent, ScanCaptured
from kiosk_app.gui.cashier_window import CashierWindow
from kiosk_app.gui.service_host import ServiceHost
from kiosk_app.kiosk_config import KioskConfig
from tests.conftest import require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from demo import run as demo

    root = tmp_path_factory.mktemp("cashier-cloud")
    demo.DEMO_DIR = root
    (root / "logs").mkdir()
    database = f"sqlite:///{root / 'cloud.db'}"
    keys = demo.setup_cloud(database)
    port = demo.free_port()
    process = demo.start_cloud(database, port, root / "logs")
    try:
        yield {**keys, "url": f"http://127.0.0.1:{port}"}
    finally:
        process.terminate()
        process.wait(timeout=30)


def _window(
    qtbot: QtBot, clip: str, cloud: dict[str, str], data_dir: Path
) -> tuple[CashierWindow, list[KioskEvent]]:
    from demo import run as demo

    config = KioskConfig(
        source=clip,
        cloud_url=cloud["url"],
        api_key=cloud["till"],
        device="till-1",
        receipts_port=0,
        data_dir=data_dir,
        detector=demo.kiosk_detector(clip),
    )
    host = ServiceHost(config)
    events: list[KioskEvent] = []
    host.pipeline_event.connect(events.append)
    window = CashierWindow(host)
    qtbot.addWidget(window)
    window.show()
    host.start()
    return window, events


class CounterWatch:
    """Ready once the same customer has stood at the counter for `frames` processed frames
    and the camera has a usable shot of them: when a cashier would scan their receipt."""

    def __init__(self, window: CashierWindow, frames: int = 8) -> None:
        self.window = window
        self.frames = frames
        self._last_index: int | None = None
        self._track: int | None = None
        self._streak = 0

    def __call__(self) -> bool:
        latest = self.window.host.latest()
        service = self.window.host.service
        if latest is None or service is None:
            return False
        frame, result = latest
        if frame.index != self._last_index:
            self._last_index = frame.index
            track = result.primary.track_id if result.primary is not None else None
            if track is not None and track == self._track:
                self._streak += 1
            else:
                self._track, self._streak = track, 1 if track is not None else 0
        return (
            self._track is not None
            and self._streak >= self.frames
            and bool(service.pipeline.shots(self._track))
        )


def _post_receipt(window: CashierWindow, number: str) -> None:
    from demo import run as demo

    url = window.host.receipts_url
    assert url is not None
    body = demo.receipt_body(number, [(demo.CATALOGUE[0], 1), (demo.CATALOGUE[3], 2)])
    httpx.post(url, json=body, timeout=10).raise_for_status()


def test_scanned_receipt_shows_the_vip_card_and_enrols_a_member(
    qtbot: QtBot, data_dir: Path, tmp_path: Path, cloud: dict[str, str]
) -> None:
    clip = str(require(data_dir / "video" / "facenet-pytorch_video.mp4"))
    window, events = _window(qtbot, clip, cloud, tmp_path / "till")
    qtbot.waitUntil(CounterWatch(window), timeout=120_000)
    assert window.frames_shown > 0  # the preview is fed by the timer

    QTest.keyClicks(window.receipt, "not a number!")
    QTest.keyClick(window.receipt, Qt.Key.Key_Return)
    assert window.error.isVisible() and "not a receipt number" in window.error.text()

    window.receipt.clear()
    QTest.keyClicks(window.receipt, "R-1001")
    QTest.keyClick(window.receipt, Qt.Key.Key_Return)  # the keyboard-wedge scanner's Enter
    assert window.receipt.text() == ""
    qtbot.waitUntil(lambda: any(isinstance(e, ScanCaptured) for e in events), timeout=30_000)
    captured = next(e for e in events if isinstance(e, ScanCaptured))
    assert captured.track_id is not None  # the customer at the counter when scanned
    _post_receipt(window, "R-1001")  # the POS sends the receipt afterwards

    qtbot.waitUntil(lambda: window.card.showing, timeout=60_000)
    card = window.card.card
    assert card is not None and card.customer_id is not None
    assert card.status == "new" and card.visit_count == 1
    queued = next(e for e in events if isinstance(e, CheckoutQueued))
    assert queued.scanned and queued.track_id == captured.track_id
    assert window.card.shown_for_track == captured.track_id
    title = window.card.findChild(QLabel, "card_title")
    assert isinstance(title, QLabel) and "New customer" in title.text()
    qtbot.waitUntil(lambda: "online" in window.cloud_label.text(), timeout=10_000)

    window.enrol(
        card.customer_id,
        MembershipRequest(vip_number="VIP-7", name="Ada Lovelace", level="gold", consent=True),
    )
    qtbot.waitUntil(
        lambda: window.card.card is not None and window.card.card.member is not None,
        timeout=15_000,
    )
    assert window.card.card is not None and window.card.card.member is not None
    assert window.card.card.member.vip_number == "VIP-7"
    assert window.ticks.ticks > 10 and window.ticks.max_gap_ms > 0
    window.close()


def test_opt_out_sends_the_next_receipt_without_a_face(
    qtbot: QtBot, data_dir: Path, tmp_path: Path, cloud: dict[str, str]
) -> None:
    clip = str(require(data_dir / "video" / "facenet-pytorch_video.mp4"))
    window, events = _window(qtbot, clip, cloud, tmp_path / "till")
    qtbot.waitUntil(CounterWatch(window), timeout=120_000)
    QTest.mouseClick(window.opt_out, Qt.MouseButton.LeftButton)
    assert window.host.opt_out.armed and window.opt_out.isChecked()
    _post_receipt(window, "R-2001")
    qtbot.waitUntil(lambda: window.card.showing, timeout=60_000)
    queued = next(e for e in events if isinstance(e, CheckoutQueued))
    assert queued.opted_out and queued.embeddings == 0
    card = window.card.card
    assert card is not None and card.status == "unidentified" and card.customer_id is None
    assert not window.host.opt_out.armed and not window.opt_out.isChecked()
    window.close()


def test_a_failing_worker_shows_its_error_and_the_window_keeps_running(
    qtbot: QtBot, tmp_path: Path
) -> None:
    config = KioskConfig(
        source=str(tmp_path / "no-such-clip.mp4"),
        cloud_url="http://127.0.0.1:9",
        api_key="ssk_x_y",
        receipts_port=0,
        data_dir=tmp_path / "till",
    )
    window = CashierWindow(ServiceHost(config))
    qtbot.addWidget(window)
    window.show()
    window.host.start()  # opening the source fails on the worker thread
    qtbot.waitUntil(lambda: window.error.isVisible(), timeout=60_000)
    assert "could not start" in window.error.text()
    assert "no-such-clip.mp4" in window.error.text()
    ticks = window.ticks.ticks
    qtbot.wait(300)
    assert window.ticks.ticks > ticks  # the event loop goes on
    QTest.keyClicks(window.receipt, "R-1")
    QTest.keyClick(window.receipt, Qt.Key.Key_Return)
    assert "not running" in window.error.text()  # a scan is refused aloud, not lost
    window.close()
