"""The cashier's "possible member" card: Are you Alex? Confirm / Not me.

The window is real (offscreen) and so is its `CloudClient`; the cloud is an
`httpx.MockTransport` that records each request and answers like the API's
`POST /v1/decisions/{id}/confirm|reject` (or fails, or waits until the test lets it answer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from contract import (
    CheckoutResponse,
    DecisionAnswer,
    ErrorBody,
    MemberInfo,
    PossibleMember,
    Preferences,
    VipCard,
    VisitSummary,
)
from kiosk_app.gui.cashier_window import CashierWindow
from kiosk_app.gui.service_host import ServiceHost
from kiosk_app.kiosk_config import KioskConfig

KEY = "ssk_till_secret"


def possible_card(decision_id: int, first_name: str = "Alex") -> VipCard:
    return VipCard(
        customer_id=None,
        status="possible_member",
        visit_count=0,
        member=None,
        purchase_level="new",
        lifetime_spend=Decimal(0),
        preferences=Preferences(categories=[], brands=[]),
        last_visits=[],
        recommendations=[],
        demographics=None,
        match_distance=0.52,
        decision_id=decision_id,
        possible_member=PossibleMember(decision_id=decision_id, first_name=first_name),
    )


def member_card(decision_id: int) -> VipCard:
    return VipCard(
        customer_id=41,
        status="returning",
        visit_count=7,
        member=MemberInfo(
            vip_number="VIP-0042",
            name="Alex Morgan",
            level="gold",
            consent_at=datetime(2026, 1, 5, tzinfo=UTC),
        ),
        purchase_level="gold",
        lifetime_spend=Decimal("812.40"),
        preferences=Preferences(categories=["coffee"], brands=["Roastery"]),
        last_visits=[
            VisitSummary(
                at=datetime(2026, 11, 20, tzinfo=UTC),
                store_id=1,
                store_name="Demo store",
                total=Decimal("24.10"),
            )
        ],
        recommendations=[],
        demographics=None,
        match_distance=0.52,
        decision_id=decision_id,
    )


def anonymous_card(decision_id: int) -> VipCard:
    return possible_card(decision_id).model_copy(
        update={"customer_id": 77, "status": "new", "visit_count": 1, "possible_member": None}
    )


class Cloud:
    """Records every request; answers with `rule`; `hold` keeps the answer until released."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        self.rule: Callable[[httpx.Request], httpx.Response] = self.answer
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(
            (request.method, request.url.path, request.headers.get("x-api-key"), request.content)
        )
        assert self.hold.wait(30)
        return self.rule(request)

    @staticmethod
    def answer(request: httpx.Request) -> httpx.Response:
        *_, decision, action = request.url.path.split("/")
        number = int(decision)
        confirmed = action == "confirm"
        answer = DecisionAnswer(
            decision_id=number,
            outcome="confirmed" if confirmed else "rejected",
            card=member_card(number) if confirmed else anonymous_card(number),
        )
        return httpx.Response(200, json=answer.model_dump(mode="json"))


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path, cloud: Cloud) -> CashierWindow:
    config = KioskConfig(
        source=str(tmp_path / "no-camera.mp4"),  # never started: the card is what is tested
        cloud_url="http://cloud.test",
        api_key=KEY,
        receipts_port=0,
        data_dir=tmp_path / "till",
    )
    host = ServiceHost(config, cloud_transport=httpx.MockTransport(cloud))
    shown = CashierWindow(host)
    qtbot.addWidget(shown)
    shown.show()
    return shown


def _checkout(window: CashierWindow, card: VipCard) -> None:
    """A checkout's answer arrives as the uplink hands it over (the host's card signal)."""
    window.host.card.emit(CheckoutResponse(receipt_id=1, card=card, companions=[]), None)


def _text(window: CashierWindow, name: str) -> str:
    label = window.card.findChild(QLabel, name)
    assert isinstance(label, QLabel)
    return label.text() if label.isVisible() else ""


def test_possible_member_asks_then_confirm_shows_the_members_card(
    qtbot: QtBot, window: CashierWindow, cloud: Cloud
) -> None:
    _checkout(window, possible_card(5))
    card = window.card
    assert "Possible member" in _text(window, "card_title")
    assert "Are you <b>Alex</b>?" in _text(window, "card_body")
    assert "membership card" in _text(window, "card_body")
    for hidden in ("Morgan", "VIP-0042", "Visits", "Spent", "Last visits"):
        assert hidden not in _text(window, "card_body") + _text(window, "card_badge")
    assert card.confirm_button.isVisible() and card.reject_button.isVisible()
    assert card.confirm_button.isEnabled() and card.reject_button.isEnabled()

    cloud.hold.clear()  # the cloud takes its time: the GUI goes on, both buttons wait
    ticks = window.ticks.ticks
    QTest.mouseClick(card.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(cloud.requests) == 1, timeout=5_000)
    assert not card.confirm_button.isEnabled() and not card.reject_button.isEnabled()
    qtbot.wait(200)
    assert window.ticks.ticks > ticks  # the event loop never waited for the call
    assert cloud.requests == [("POST", "/v1/decisions/5/confirm", KEY, b"")]
    cloud.hold.set()

    qtbot.waitUntil(lambda: window.card.card is not None and window.card.card.member is not None)
    assert "Alex Morgan" in _text(window, "card_title")
    assert "VIP-0042" in _text(window, "card_badge")
    assert "Visits" in _text(window, "card_body") and "20 Nov 2026" in _text(window, "card_body")
    assert not card.confirm_button.isVisible() and not card.reject_button.isVisible()
    assert "member confirmed" in window.statusBar().currentMessage()


def test_not_me_shows_the_anonymous_card_returned(
    qtbot: QtBot, window: CashierWindow, cloud: Cloud
) -> None:
    _checkout(window, possible_card(6))
    QTest.mouseClick(window.card.reject_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.card.card is not None and window.card.card.status == "new")
    assert [r[:2] for r in cloud.requests] == [("POST", "/v1/decisions/6/reject")]
    assert window.card.card is not None and window.card.card.customer_id == 77
    assert "New customer" in _text(window, "card_title")
    assert "Alex" not in _text(window, "card_title") + _text(window, "card_body")
    assert not window.card.confirm_button.isVisible()
    assert "not the member" in window.statusBar().currentMessage()


def test_offline_says_so_and_the_buttons_stay_usable(
    qtbot: QtBot, window: CashierWindow, cloud: Cloud
) -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    cloud.rule = offline
    _checkout(window, possible_card(7))
    QTest.mouseClick(window.card.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cannot reach" in _text(window, "card_note"))
    assert "Try again" in _text(window, "card_note")
    assert "Could not confirm" in window.statusBar().currentMessage()
    assert window.card.confirm_button.isEnabled() and window.card.reject_button.isEnabled()
    assert window.card.card is not None and window.card.card.status == "possible_member"

    cloud.rule = Cloud.answer  # back online: the same button works
    QTest.mouseClick(window.card.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.card.card is not None and window.card.card.member is not None)
    assert [r[1] for r in cloud.requests] == ["/v1/decisions/7/confirm"] * 2


def test_already_answered_says_so_and_does_not_offer_the_buttons_again(
    qtbot: QtBot, window: CashierWindow, cloud: Cloud
) -> None:
    body = ErrorBody(error="conflict", detail="decision 8 was already confirmed")
    cloud.rule = lambda _: httpx.Response(409, json=body.model_dump(mode="json"))
    _checkout(window, possible_card(8))
    QTest.mouseClick(window.card.reject_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "already answered" in _text(window, "card_note"))
    assert "Could not reject" in window.statusBar().currentMessage()
    assert not window.card.confirm_button.isEnabled()
    assert not window.card.reject_button.isEnabled()
    assert [r[1] for r in cloud.requests] == ["/v1/decisions/8/reject"]


def test_an_answer_for_a_card_no_longer_shown_does_not_replace_the_new_one(
    qtbot: QtBot, window: CashierWindow, cloud: Cloud
) -> None:
    _checkout(window, possible_card(9))
    cloud.hold.clear()
    QTest.mouseClick(window.card.confirm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(cloud.requests) == 1)
    _checkout(window, possible_card(10, "Sam"))  # the next customer's card arrives meanwhile
    cloud.hold.set()
    qtbot.waitUntil(lambda: "decision 9" in window.activity.item(0).text())
    assert window.card.decision_id == 10 and "Sam" in _text(window, "card_body")
    assert window.card.confirm_button.isEnabled()
