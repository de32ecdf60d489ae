"""The staff app's wire bodies (`/v1/staff/*`): arrivals on the shop floor's phones.

An arrival card is what a staff member needs to greet a returning customer: who they are (a
member's photo, name, VIP number and level; a frequent customer who is not a member has
neither photo nor name), how much they buy, what they like, what they bought lately, and
whether a colleague has greeted them already.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.bodies import MAX_CROP_BYTES, PlainText, Preferences, PurchaseLevel
from contract.reports import StoreOut, UserOut

__all__ = [
    "ArrivalCard",
    "ArrivalGreeted",
    "ArrivalKind",
    "ArrivalMember",
    "ArrivalPurchase",
    "ArrivalVisit",
    "ArrivalsWithdrawn",
    "Greeting",
    "StaffArrivals",
    "NewStaffAccount",
    "StaffAccount",
    "StaffMe",
    "StaffSession",
]

#: "vip": a member came in; "frequent": a frequent customer who is not a member
ArrivalKind = Literal["vip", "frequent"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaffMe(_Wire):
    """The signed-in staff member and the store whose arrivals they see."""

    user: UserOut
    store: StoreOut


class StaffSession(_Wire):
    """Whether this browser is signed in to the staff app (an answer, never a 401)."""

    signed_in: bool
    me: StaffMe | None


class ArrivalMember(_Wire):
    vip_number: str
    name: str
    level: str


class ArrivalVisit(_Wire):
    """One of the customer's latest visits to this store."""

    at: datetime
    total: Decimal | None
    currency: str | None


class ArrivalPurchase(_Wire):
    """One of the customer's latest purchases in this store (a receipt's line)."""

    at: datetime
    name: str
    category: str
    brand: str | None
    quantity: Decimal


class Greeting(_Wire):
    by_user_id: int | None = Field(description="None once that staff account was deleted")
    by_name: str
    at: datetime


class ArrivalCard(_Wire):
    arrival_id: int = Field(description="the arrival's alert id (the stream's event id)")
    kind: ArrivalKind
    at: datetime
    customer_id: int
    member: ArrivalMember | None
    face_jpeg_base64: str | None = Field(
        None,
        max_length=(MAX_CROP_BYTES * 4) // 3 + 4,
        description="the member's face as the entrance saw it (base64 JPEG); members only",
    )
    purchase_level: PurchaseLevel
    visit_count: int
    lifetime_spend: Decimal
    currency: str | None
    preferences: Preferences
    last_visits: list[ArrivalVisit]
    last_purchases: list[ArrivalPurchase]
    greeted: Greeting | None


class StaffArrivals(_Wire):
    """Today's arrivals (the last `list_hours` hours) in the store, newest first."""

    arrivals: list[ArrivalCard]
    latest_event_id: int = Field(description="resume the stream after this (Last-Event-ID)")
    list_hours: int


class ArrivalGreeted(_Wire):
    """The stream's `greeted` event."""

    arrival_id: int
    greeted: Greeting


class ArrivalsWithdrawn(_Wire):
    """The stream's `withdrawn` event: drop these arrivals (the customer was deleted or
    withdrew their consent)."""

    arrival_ids: list[int]


class NewStaffAccount(_Wire):
    """A staff account a store's manager (or an admin) opens for the store."""

    email: str = Field(min_length=3, max_length=254)
    name: PlainText = Field(min_length=1, max_length=200)
    password: str = Field(min_length=8, max_length=256)


class StaffAccount(_Wire):
    id: int
    email: str
    name: str
    store_id: int
    created_at: datetime
    disabled_at: datetime | None
    signed_in_devices: int = Field(description="sessions not yet expired or signed out")
