"""Request and response bodies of the StoreSight cloud API (version 1)."""

from __future__ import annotations

import base64
import binascii
import math
import struct
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "DESCRIPTOR_SIZE",
    "MAX_CROP_BYTES",
    "MAX_RECEIPT_TOTAL",
    "jpeg_size",
    "PlainText",
    "MAX_VISIT_EMBEDDINGS",
    "Gender",
    "PurchaseLevel",
    "CardStatus",
    "SightingStatus",
    "Embedding",
    "FaceCrop",
    "LineItem",
    "Receipt",
    "Companion",
    "CheckoutRequest",
    "Demographics",
    "MemberInfo",
    "VisitSummary",
    "ProductSuggestion",
    "Preferences",
    "PossibleMember",
    "VipCard",
    "DecisionAnswer",
    "CompanionResult",
    "CheckoutResponse",
    "SightingRequest",
    "SightingResponse",
    "VipArrival",
    "DeviceInfo",
    "MembershipRequest",
    "CustomerOut",
    "ReceiptOut",
    "CustomerHistory",
    "FieldError",
    "ErrorBody",
]

DESCRIPTOR_SIZE = 128
#: Shots of one face a checkout or sighting may carry; the cloud fuses them into one visit.
MAX_VISIT_EMBEDDINGS = 16
_F16_BYTES = 2 * DESCRIPTOR_SIZE
_F16_FORMAT = f"<{DESCRIPTOR_SIZE}e"
#: A face crop is one aligned chip as JPEG: a few kilobytes, never a frame of video.
MAX_CROP_BYTES = 64 * 1024
CROP_SIZE = 150

Gender = Literal["female", "male"]
PurchaseLevel = Literal["new", "bronze", "silver", "gold", "platinum"]
#: Who a VIP card says the customer at the counter is.
CardStatus = Literal["new", "returning", "possible_member", "unidentified"]
#: Who a sighting at the entrance says the visitor is.
SightingStatus = Literal["new", "returning"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The largest receipt total the cloud stores (a receipt above it is refused, 422): every
#: amount summed from receipts (a customer's lifetime spend, a store-day's revenue) then stays
#: far inside its column, whatever the line items' own maxima multiply to.
MAX_RECEIPT_TOTAL = Decimal("9999999.99")
#: Timestamps a device may send at all, whatever the server's clock window (CloudSettings):
#: far enough from the calendar's ends that converting to UTC or adding a day never overflows.
_EARLIEST_YEAR, _LATEST_YEAR = 1970, 9000


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must carry a time zone (e.g. 2026-11-25T10:00:00Z)")
    # the local wall time's year, checked before any time zone arithmetic: year 1 at +14:00
    # has no UTC equivalent at all
    if not _EARLIEST_YEAR <= value.year < _LATEST_YEAR:
        raise ValueError(
            f"timestamps must lie between the years {_EARLIEST_YEAR} and {_LATEST_YEAR}"
        )
    return value


def _plain_text(value: str) -> str:
    """Text for names, numbers and codes: no control characters (NUL, escapes, line breaks)
    and no lone surrogates, which no database column can store as text."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
PlainText = Annotated[str, AfterValidator(_plain_text)]


class Embedding(_Wire):
    """One 128-d face descriptor (facelib.embedder) with the kiosk's quality score.

    The descriptor travels either as `f16` (the kiosk's encoding: base64 of 128 little-endian
    IEEE half floats, 344 characters, about 5x smaller than decimal JSON and within 1e-3 of
    the float32 values, far below the distances decisions are made at) or as `vector`
    (decimal numbers), never both. `values()` gives the numbers whichever was sent.
    """

    vector: list[float] | None = Field(None, min_length=DESCRIPTOR_SIZE, max_length=DESCRIPTOR_SIZE)
    f16: str | None = Field(
        None,
        min_length=(_F16_BYTES * 4) // 3,
        max_length=(_F16_BYTES * 4) // 3 + 4,
        description="base64 of 128 little-endian float16 values",
    )
    quality: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_encoding(self) -> Embedding:
        if (self.vector is None) == (self.f16 is None):
            raise ValueError("an embedding carries exactly one of vector or f16")
        _check_descriptor(self.values())
        return self

    @field_validator("f16")
    @classmethod
    def _f16(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("f16 is not valid base64") from None
        if len(raw) != _F16_BYTES:
            raise ValueError(f"f16 must decode to {_F16_BYTES} bytes, got {len(raw)}")
        return value

    def values(self) -> list[float]:
        """The descriptor's 128 numbers."""
        if self.vector is not None:
            return self.vector
        assert self.f16 is not None
        return list(struct.unpack(_F16_FORMAT, base64.b64decode(self.f16)))

    @classmethod
    def compact(cls, values: Sequence[float], quality: float) -> Embedding:
        """The f16 encoding of a descriptor (what the kiosk sends)."""
        if len(values) != DESCRIPTOR_SIZE:
            raise ValueError(f"a descriptor has {DESCRIPTOR_SIZE} values, got {len(values)}")
        raw = struct.pack(_F16_FORMAT, *(float(v) for v in values))
        return cls(f16=base64.b64encode(raw).decode("ascii"), quality=quality)


def _check_descriptor(vector: Sequence[float]) -> None:
    if not all(math.isfinite(v) for v in vector):
        raise ValueError("descriptor values must be finite numbers")
    if not 0.05 < math.sqrt(sum(v * v for v in vector)) < 10.0:
        raise ValueError("descriptor norm is outside what the embedder produces")


class FaceCrop(_Wire):
    """The aligned 150x150 RGB face chip (dlib template, padding 0.25) as base64 JPEG."""

    jpeg_base64: str = Field(min_length=8, max_length=(MAX_CROP_BYTES * 4) // 3 + 4)

    @field_validator("jpeg_base64")
    @classmethod
    def _jpeg(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        if not raw.startswith(b"\xff\xd8"):
            raise ValueError("not a JPEG image")
        size = jpeg_size(raw)
        if size is None:
            raise ValueError("not a JPEG image with a frame header")
        if size != (CROP_SIZE, CROP_SIZE):
            # read from the header, before anything decodes it: a few hundred bytes may
            # claim 60000x60000 pixels
            raise ValueError(
                f"expected the aligned {CROP_SIZE}x{CROP_SIZE} chip, the JPEG header says "
                f"{size[0]}x{size[1]}"
            )
        return value

    def jpeg(self) -> bytes:
        return base64.b64decode(self.jpeg_base64)


#: SOF markers (frame headers: baseline, progressive, lossless, arithmetic); C4, C8 and CC
#: share the range but are tables, not frames
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: markers that stand alone, without a length: TEM, RST0-7, SOI, EOI
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})


def jpeg_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first frame header, without decoding anything; None
    when the bytes are not a JPEG with a frame header before its scan."""
    if not raw.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE_MARKERS:
            at += 2
            continue
        (length,) = struct.unpack_from(">H", raw, at + 2)
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if at + 9 > len(raw):
                return None
            height, width = struct.unpack_from(">HH", raw, at + 5)
            return width, height
        if marker == 0xDA:  # start of scan: image data follows, no frame header came
            return None
        at += 2 + length
    return None


class LineItem(_Wire):
    sku: PlainText = Field(min_length=1, max_length=64)
    name: PlainText = Field(min_length=1, max_length=200)
    category: PlainText = Field(min_length=1, max_length=100)
    brand: PlainText = Field("", max_length=100)
    quantity: Decimal = Field(gt=0, max_digits=10, decimal_places=3)
    unit_price: Money


class Receipt(_Wire):
    number: PlainText = Field(min_length=1, max_length=64, description="the POS receipt number")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    scanned_at: AwareDatetime
    items: list[LineItem] = Field(min_length=1, max_length=500)
    loyalty_id: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9-]+$",
        description="the member's card number when the POS scanned it (a VIP number): "
        "identifies the customer without the face",
    )
    payment_token: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the POS's salted SHA-256 of the payment card (64 hex digits), never the "
        "card number: identifies a customer once a verified visit has tied it to them",
    )

    @model_validator(mode="after")
    def _storable_total(self) -> Receipt:
        if self.total > MAX_RECEIPT_TOTAL:
            raise ValueError(f"the receipt's total is above {MAX_RECEIPT_TOTAL}")
        return self

    @property
    def total(self) -> Decimal:
        return sum((i.quantity * i.unit_price for i in self.items), Decimal(0)).quantize(
            Decimal("0.01")
        )


class Companion(_Wire):
    """Someone standing with the customer at the counter (a partner, a child)."""

    embeddings: list[Embedding] = Field(min_length=1, max_length=MAX_VISIT_EMBEDDINGS)
    face_crop: FaceCrop | None = None


class CheckoutRequest(_Wire):
    idempotency_key: str = Field(
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="the kiosk's key for this checkout; a retry with the same key returns the "
        "first answer and stores nothing twice",
    )
    captured_at: AwareDatetime
    receipt: Receipt
    embeddings: list[Embedding] = Field(default_factory=list, max_length=MAX_VISIT_EMBEDDINGS)
    face_crop: FaceCrop | None = None
    companions: list[Companion] = Field(default_factory=list, max_length=5)


class Demographics(_Wire):
    age_years: float
    age_confidence: float
    gender: Gender
    gender_confidence: float


class MemberInfo(_Wire):
    vip_number: str
    name: str
    level: str
    consent_at: datetime


class VisitSummary(_Wire):
    at: datetime
    store_id: int
    store_name: str
    total: Decimal | None
    currency: str | None = Field(
        None, description="the receipt's ISO 4217 currency; None when the visit had no receipt"
    )


class ProductSuggestion(_Wire):
    sku: str
    name: str
    category: str
    brand: str
    reason: str


class Preferences(_Wire):
    categories: list[str]
    brands: list[str]


class PossibleMember(_Wire):
    """The face resembles a member, but not closely enough to show who: no name, no history.

    The cashier asks ("Are you Alex?") or asks for the membership card, then confirms or
    rejects with `POST /v1/decisions/{decision_id}/confirm` or `/reject`.
    """

    decision_id: int
    first_name: str = Field(description="the member's first name only, for the question")


class VipCard(_Wire):
    """What the cashier's screen shows about the customer at the counter.

    `status` "possible_member": `customer_id`, visits, spend, preferences and member details
    are empty, `possible_member` says what to ask.
    """

    customer_id: int | None
    status: CardStatus
    visit_count: int
    member: MemberInfo | None
    purchase_level: PurchaseLevel
    lifetime_spend: Decimal
    preferences: Preferences
    last_visits: list[VisitSummary]
    recommendations: list[ProductSuggestion]
    demographics: Demographics | None
    match_distance: float | None
    decision_id: int | None = Field(
        None, description="the recognition decision behind this card (confirm/reject)"
    )
    possible_member: PossibleMember | None = None
    currency: str | None = Field(
        None,
        description="the ISO 4217 currency of `lifetime_spend` (the customer's latest "
        "receipt's); None when the customer has no receipt",
    )


class DecisionAnswer(_Wire):
    """The answer to a cashier's confirm or reject: the card to show now."""

    decision_id: int
    outcome: Literal["confirmed", "rejected"]
    card: VipCard


class CompanionResult(_Wire):
    customer_id: int | None
    status: Literal["new", "returning", "unidentified"]


class CheckoutResponse(_Wire):
    receipt_id: int
    card: VipCard
    companions: list[CompanionResult]


class SightingRequest(_Wire):
    captured_at: AwareDatetime
    embeddings: list[Embedding] = Field(min_length=1, max_length=MAX_VISIT_EMBEDDINGS)
    face_crop: FaceCrop | None = None


class SightingResponse(_Wire):
    customer_id: int | None
    status: SightingStatus
    is_vip: bool
    visitors_today: int


class VipArrival(_Wire):
    """The event staff devices receive on GET /v1/stores/{id}/alerts (server-sent events)."""

    event_id: int
    store_id: int
    customer_id: int
    vip_number: str
    name: str
    level: str
    at: datetime
    face_jpeg_base64: str | None = Field(
        None,
        max_length=(MAX_CROP_BYTES * 4) // 3 + 4,
        description="the member's face as the entrance saw it (the aligned chip, base64 JPEG) "
        "so staff can find them; members only (they consented), None when no crop was sent",
    )


class DeviceInfo(_Wire):
    """What a device key is: which device, of which kind, in which store."""

    device_id: int
    name: str
    kind: Literal["till", "entrance", "store_server"]
    store_id: int
    store_code: str
    store_name: str
    region_id: int


class MembershipRequest(_Wire):
    vip_number: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")
    name: PlainText = Field(min_length=1, max_length=200)
    level: PlainText = Field("standard", min_length=1, max_length=32)
    consent: bool = Field(
        description="the customer agreed to have their face recognised as a member; "
        "membership cannot be bound without it"
    )

    @field_validator("consent")
    @classmethod
    def _given(cls, consent: bool) -> bool:
        if not consent:
            raise ValueError("membership needs the customer's consent to face recognition")
        return consent


class CustomerOut(_Wire):
    customer_id: int
    status: Literal["anonymous", "member"]
    member: MemberInfo | None
    first_seen_at: datetime
    last_seen_at: datetime
    visit_count: int
    lifetime_spend: Decimal
    gender: Gender | None
    age_years: float | None


class ReceiptOut(_Wire):
    receipt_id: int
    number: str
    store_id: int
    scanned_at: datetime
    currency: str
    total: Decimal
    items: list[LineItem]


class CustomerHistory(_Wire):
    customer_id: int
    receipts: list[ReceiptOut]


class FieldError(_Wire):
    field: str
    message: str


class ErrorBody(_Wire):
    error: str
    detail: str
    fields: list[FieldError] = Field(default_factory=list)
