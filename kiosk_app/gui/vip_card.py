"""The VIP card the cashier sees after each checkout, and the member enrolment dialog.

A "possible member" card (the face resembles a member, not closely enough to say who) shows
no name and no history: it asks "Are you {first name}?" (or for the membership card) with
**Confirm** and **Not me**, which emit `confirmRequested` / `rejectRequested` with the
decision's id; the window sends them and shows the card the cloud answers.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from contract import MemberInfo, MembershipRequest, VipCard
from storesight_common.validation import problems

LEVEL_COLOURS = {
    "new": "#5f6b7a",
    "bronze": "#a0522d",
    "silver": "#7f8c8d",
    "gold": "#b8860b",
    "platinum": "#2c3e50",
}
MEMBER_LEVELS = ("standard", "silver", "gold", "platinum")
POSSIBLE_COLOUR = "#c77700"


#: the currency money is shown in when the card does not say (an older cloud): the contract's
#: receipt default, which is what this kiosk sends unless its POS says otherwise
FALLBACK_CURRENCY = "EUR"


def money(value: Decimal, currency: str | None) -> str:
    """An amount with its currency ("EUR 1,234.50"): a bare "13.00" reads like a time."""
    return f"{currency or FALLBACK_CURRENCY} {value:,.2f}"


class VipCardWidget(QFrame):
    """Shows one `VipCard`; empty ("waiting for a checkout") until the first one."""

    enrolRequested = Signal(int)  # customer id
    confirmRequested = Signal(int)  # decision id: the customer is the member asked about
    rejectRequested = Signal(int)  # decision id: the customer is not that member

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("vip_card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(340)
        self.card: VipCard | None = None
        self.shown_for_track: int | None = None
        self._title = QLabel()
        self._title.setObjectName("card_title")
        self._title.setWordWrap(True)
        self._badge = QLabel()
        self._badge.setObjectName("card_badge")
        self._body = QLabel()
        self._body.setObjectName("card_body")
        self._body.setWordWrap(True)
        self._body.setTextFormat(Qt.TextFormat.RichText)
        self._body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._enrol = QPushButton("Enrol as VIP member…")
        self._enrol.setObjectName("enrol")
        self._enrol.clicked.connect(self._ask_enrol)
        self.confirm_button = QPushButton("Confirm")
        self.confirm_button.setObjectName("confirm_member")
        self.confirm_button.setToolTip("The customer is this member (or showed the member card)")
        self.confirm_button.clicked.connect(lambda: self._decide(self.confirmRequested))
        self.reject_button = QPushButton("Not me")
        self.reject_button.setObjectName("reject_member")
        self.reject_button.setToolTip("The customer is not this member")
        self.reject_button.clicked.connect(lambda: self._decide(self.rejectRequested))
        for button in (self.confirm_button, self.reject_button):
            button.setMinimumHeight(44)
            button.setStyleSheet("font-size:13pt;font-weight:600")
        self._note = QLabel()
        self._note.setObjectName("card_note")
        self._note.setWordWrap(True)
        decide = QHBoxLayout()
        decide.addWidget(self.confirm_button)
        decide.addWidget(self.reject_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self._title)
        layout.addWidget(self._badge)
        layout.addWidget(self._body, 1)
        layout.addLayout(decide)
        layout.addWidget(self._note)
        layout.addWidget(self._enrol)
        self.clear()

    @property
    def showing(self) -> bool:
        return self.card is not None

    def clear(self, message: str = "Waiting for a checkout…") -> None:
        self.card = None
        self.shown_for_track = None
        self._title.setText(f"<span style='font-size:15pt;color:#777'>{message}</span>")
        self._badge.clear()
        self._body.clear()
        self._enrol.hide()
        self._show_decision(False)

    @property
    def decision_id(self) -> int | None:
        """The decision a possible-member card asks about (None for any other card)."""
        if self.card is None or self.card.possible_member is None:
            return None
        return self.card.possible_member.decision_id

    def set_deciding(self) -> None:
        """A confirm or reject is in flight: both buttons wait for its answer."""
        self.confirm_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        self._set_note("Asking the cloud…")

    def decision_failed(self, message: str, *, retry: bool) -> None:
        """Say why; the buttons come back when asking again may help (offline, a timeout)."""
        self.confirm_button.setEnabled(retry)
        self.reject_button.setEnabled(retry)
        self._set_note(message + (" Try again." if retry else ""), error=True)

    def show_card(self, card: VipCard, track_id: int | None = None) -> None:
        self.card = card
        self.shown_for_track = track_id
        if card.status == "possible_member" and card.possible_member is not None:
            self._show_possible_member(card.possible_member.first_name)
            return
        self._show_decision(False)
        if card.member is not None:
            title = escape(card.member.name)
        elif card.status == "returning":
            title = "Returning customer"
        elif card.status == "new":
            title = "New customer"
        else:
            title = "No face captured"
        self._title.setText(f"<span style='font-size:20pt;font-weight:600'>{title}</span>")
        colour = LEVEL_COLOURS.get(card.purchase_level, "#5f6b7a")
        badge = f"{card.purchase_level.upper()} buyer"
        if card.member is not None:
            member = f"{card.member.vip_number} · {card.member.level} member"
            badge = escape(member) + " · " + badge
        self._badge.setText(
            f"<span style='background:{colour};color:white;padding:4px 8px;"
            f"border-radius:4px;font-weight:600'>&nbsp;{badge}&nbsp;</span>"
        )
        self._body.setText(self._details(card))
        self._enrol.setVisible(card.customer_id is not None and card.member is None)

    def _show_possible_member(self, first_name: str) -> None:
        self._title.setText("<span style='font-size:20pt;font-weight:600'>Possible member</span>")
        self._badge.setText(
            f"<span style='background:{POSSIBLE_COLOUR};color:white;padding:4px 8px;"
            "border-radius:4px;font-weight:600'>&nbsp;ASK THE CUSTOMER&nbsp;</span>"
        )
        self._body.setText(
            f"<p style='font-size:18pt;margin-bottom:4px'>Are you <b>{escape(first_name)}</b>?</p>"
            "<p style='color:#666'>Or ask for the membership card. Nothing about the member "
            "is shown until the customer confirms.</p>"
        )
        self._enrol.hide()
        self._show_decision(True)

    def _show_decision(self, visible: bool) -> None:
        for button in (self.confirm_button, self.reject_button):
            button.setVisible(visible)
            button.setEnabled(visible)
        self._set_note("")

    def _set_note(self, text: str, *, error: bool = False) -> None:
        self._note.setStyleSheet("color:#b00020;font-weight:600" if error else "color:#555")
        self._note.setText(text)
        self._note.setVisible(bool(text))

    def _decide(self, signal: SignalInstance) -> None:
        decision = self.decision_id
        if decision is not None:
            signal.emit(decision)

    def set_member(self, member: MemberInfo) -> None:
        if self.card is not None:
            self.show_card(self.card.model_copy(update={"member": member}), self.shown_for_track)

    def _ask_enrol(self) -> None:
        if self.card is not None and self.card.customer_id is not None:
            self.enrolRequested.emit(self.card.customer_id)

    @staticmethod
    def _details(card: VipCard) -> str:
        rows: list[tuple[str, str]] = [
            ("Visits", str(card.visit_count)),
            ("Spent", money(card.lifetime_spend, card.currency)),
        ]
        if card.demographics is not None:
            d = card.demographics
            rows.append(("Looks", f"about {d.age_years:.0f}, {d.gender}"))
        if card.preferences.categories:
            rows.append(("Likes", ", ".join(card.preferences.categories[:4])))
        if card.preferences.brands:
            rows.append(("Brands", ", ".join(card.preferences.brands[:4])))
        text = "<table cellspacing='4'>"
        for key, value in rows:
            text += f"<tr><td style='color:#666'>{key}</td><td><b>{escape(value)}</b></td></tr>"
        text += "</table>"
        if card.last_visits:
            text += "<p style='color:#666;margin-bottom:0'>Last visits here</p><ul>"
            for visit in card.last_visits[:3]:
                currency = visit.currency or card.currency
                total = "" if visit.total is None else f" · {money(visit.total, currency)}"
                text += f"<li>{visit.at:%d %b %Y}{total}</li>"
            text += "</ul>"
        if card.recommendations:
            text += "<p style='color:#666;margin-bottom:0'>Suggest</p><ul>"
            for item in card.recommendations[:3]:
                reason = f"<span style='color:#888'>({escape(item.reason)})</span>"
                text += f"<li><b>{escape(item.name)}</b> {reason}</li>"
            text += "</ul>"
        return text


class EnrolDialog(QDialog):
    """Bind a VIP number and name to the customer on the card; needs recorded consent."""

    def __init__(self, customer_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Enrol VIP member")
        self.customer_id = customer_id
        self.request: MembershipRequest | None = None
        self.vip_number = QLineEdit()
        self.vip_number.setObjectName("vip_number")
        self.vip_number.setPlaceholderText("e.g. VIP-000123 (scan the member card)")
        self.name = QLineEdit()
        self.name.setObjectName("member_name")
        self.level = QComboBox()
        self.level.setObjectName("member_level")
        self.level.addItems(MEMBER_LEVELS)
        self.consent = QCheckBox(
            "The customer agreed to be recognised by face as a VIP member\n"
            "(consent form signed; they can withdraw it at any time)."
        )
        self.consent.setObjectName("consent")
        self.error = QLabel()
        self.error.setObjectName("enrol_error")
        self.error.setStyleSheet("color:#b00020")
        self.error.setWordWrap(True)
        form = QFormLayout()
        form.addRow("VIP number", self.vip_number)
        form.addRow("Name", self.name)
        form.addRow("Level", self.level)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Enrol")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.consent)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        for signal in (self.vip_number.textChanged, self.name.textChanged):
            signal.connect(self._update)
        self.consent.toggled.connect(self._update)
        self._update()

    def _update(self) -> None:
        ready = (
            self.consent.isChecked()
            and bool(self.vip_number.text().strip())
            and bool(self.name.text().strip())
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ready)

    def _accept(self) -> None:
        try:
            self.request = MembershipRequest(
                vip_number=self.vip_number.text().strip(),
                name=self.name.text().strip(),
                level=self.level.currentText(),
                consent=self.consent.isChecked(),
            )
        except ValidationError as error:
            self.error.setText("; ".join(problems(error)))
            return
        self.accept()
