"""The staff and cashier screens (issue 14 item 8): money with its currency on the VIP card,
and the member's face on the staff pop-up and in the arrivals table (offscreen, pytest-qt)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import cv2
import numpy as np
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from contract import Preferences, VipArrival, VipCard, VisitSummary
from contract.bodies import CROP_SIZE
from kiosk_app.gui.staff_window import StaffWindow
from kiosk_app.gui.vip_card import FALLBACK_CURRENCY, VipCardWidget


def _card(currency: str | None, visits: list[VisitSummary]) -> VipCard:
    return VipCard(
        customer_id=7,
        status="returning",
        visit_count=3,
        member=None,
        purchase_level="gold",
        lifetime_spend=Decimal("1234.5"),
        preferences=Preferences(categories=[], brands=[]),
        last_visits=visits,
        recommendations=[],
        demographics=None,
        match_distance=0.3,
        currency=currency,
    )


def _visit(day: int, total: str, currency: str | None) -> VisitSummary:
    return VisitSummary(
        at=datetime(2026, 11, day, 13, 0, tzinfo=UTC),
        store_id=1,
        store_name="One",
        total=Decimal(total),
        currency=currency,
    )


def _body(widget: VipCardWidget) -> str:
    body = widget.findChild(QLabel, "card_body")
    assert isinstance(body, QLabel)
    return body.text()


def test_the_vip_card_shows_money_with_its_currency(qtbot: QtBot) -> None:
    widget = VipCardWidget()
    qtbot.addWidget(widget)
    widget.show_card(_card("GBP", [_visit(26, "13.00", "GBP"), _visit(20, "8.5", None)]))
    text = _body(widget)
    assert "GBP 1,234.50" in text  # the spend
    assert "26 Nov 2026 · GBP 13.00" in text  # not "26 Nov 2026 · 13.00", which reads as a time
    assert "20 Nov 2026 · GBP 8.50" in text  # a visit without its own: the card's currency
    # a card from a cloud that does not say: the kiosk's receipt currency
    widget.show_card(_card(None, [_visit(26, "13.00", None)]))
    text = _body(widget)
    assert f"{FALLBACK_CURRENCY} 1,234.50" in text
    assert f"26 Nov 2026 · {FALLBACK_CURRENCY} 13.00" in text


def _face_jpeg() -> str:
    chip = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    cv2.circle(chip, (75, 75), 50, (40, 120, 220), -1)
    ok, jpeg = cv2.imencode(".jpg", chip)
    assert ok
    return base64.b64encode(jpeg.tobytes()).decode("ascii")


def _arrival(event_id: int, face: str | None) -> VipArrival:
    return VipArrival(
        event_id=event_id,
        store_id=1,
        customer_id=100 + event_id,
        vip_number=f"VIP-{event_id}",
        name=f"Member {event_id}",
        level="gold",
        at=datetime.now(UTC),
        face_jpeg_base64=face,
    )


def test_the_staff_popup_and_the_arrivals_table_show_the_members_face(qtbot: QtBot) -> None:
    window = StaffWindow(toast_timeout_ms=0)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.show_arrival(_arrival(1, _face_jpeg()))
    [toast] = window.toasts.visible_toasts()
    assert toast.image is not None
    pixmap = toast.image.pixmap()
    assert not pixmap.isNull() and pixmap.width() > 0 and pixmap.height() > 0
    time_cell = window.table.item(0, 0)
    assert time_cell is not None and not time_cell.icon().isNull()
    # without a face (an entrance that sent no crop): text only, nothing broken
    window.show_arrival(_arrival(2, None))
    newest = window.toasts.visible_toasts()[-1]
    assert newest.image is None and newest.lines[0] == "Member 2"
    time_cell = window.table.item(0, 0)
    assert time_cell is not None and time_cell.icon().isNull()
    window.toasts.clear()
    window.close()
