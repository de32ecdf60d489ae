"""The kiosk's events: one class per kind, written as JSON lines for other programs to follow.

Every event carries its kind in `event` (``{"event":"track_started",...}``), which is how a
line is read back into its class (`parse_event`). Events are frozen pydantic models: the
pipeline builds a few per frame (`BestShot`, `TrackStarted`), each a handful of scalars, so
building one costs microseconds; the one list, `TrackEnded.embedding`, comes once per track.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contract import CardStatus, PurchaseLevel, SightingStatus
from kiosk_app.zone import Role
from storesight_common.validation import problems

__all__ = [
    "KioskEventBase",
    "TrackStarted",
    "BestShot",
    "TrackEnded",
    "ReceiptScanned",
    "ReceiptReceived",
    "ScanCaptured",
    "CheckoutQueued",
    "CardReceived",
    "SightingReported",
    "KioskEvent",
    "EventSink",
    "InvalidEvent",
    "parse_event",
    "JsonLinesWriter",
    "EventCollector",
]


class KioskEventBase(BaseModel):
    """What every event shares: frozen, and no field beyond its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- the face pipeline (per frame / per track) ---------------------------------------------


class TrackStarted(KioskEventBase):
    """A face is tracked from this frame on."""

    event: Literal["track_started"] = "track_started"
    track_id: int
    frame: int
    t: float  # the frame's time, seconds from the source's start
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


class BestShot(KioskEventBase):
    """A track has a new best shot (its highest quality chip so far)."""

    event: Literal["best_shot"] = "best_shot"
    track_id: int
    frame: int
    t: float
    quality: float


class TrackEnded(KioskEventBase):
    """A track ended; `embedding` is its shots' quality-weighted descriptor (None: no shot)."""

    event: Literal["track_ended"] = "track_ended"
    track_id: int
    first_seen: float
    last_seen: float
    frames: int
    role: Role  # the role it held in most of its frames
    shots: int
    quality: float  # the mean quality of its shots
    best_quality: float
    embedding: tuple[float, ...] | None = None


# ---- receipts and checkouts -------------------------------------------------------------------


class ReceiptScanned(KioskEventBase):
    """The cashier scanned (or typed) a receipt number."""

    event: Literal["receipt_scanned"] = "receipt_scanned"
    number: str
    already_bound: bool  # its receipt was sent already: a late scan, nothing to do


class ReceiptReceived(KioskEventBase):
    """A valid receipt arrived from the POS."""

    event: Literal["receipt"] = "receipt"
    number: str
    source: str  # "http", or "folder:<file name>" for a watched folder's file


class ScanCaptured(KioskEventBase):
    """Who stood at the counter when a receipt number was scanned."""

    event: Literal["scan_captured"] = "scan_captured"
    number: str
    track_id: int | None  # the customer's track, None when nobody was there
    opted_out: bool


class CheckoutQueued(KioskEventBase):
    """A receipt was bound to the faces at the counter and put in the outbox."""

    event: Literal["checkout_queued"] = "checkout_queued"
    number: str
    idempotency_key: str
    track_id: int | None
    companions: tuple[int, ...]  # companions' track ids
    embeddings: int  # descriptors sent
    opted_out: bool
    scanned: bool  # bound to the faces captured when the number was scanned
    bytes: int  # the request body's size


class CardReceived(KioskEventBase):
    """The cloud answered a checkout with a VIP card."""

    event: Literal["vip_card"] = "vip_card"
    idempotency_key: str
    receipt_id: int
    customer_id: int | None
    status: CardStatus
    visit_count: int
    member: bool
    purchase_level: PurchaseLevel
    decision_id: int | None
    track_id: int | None
    latency_ms: float | None  # receipt in to card back; None when the checkout was not in flight


# ---- the entrance -----------------------------------------------------------------------------


class SightingReported(KioskEventBase):
    """The cloud recognised (or enrolled) a visitor seen at the entrance."""

    event: Literal["sighting"] = "sighting"
    track_id: int
    customer_id: int | None
    status: SightingStatus
    is_vip: bool
    visitors_today: int


KioskEvent = Annotated[
    TrackStarted
    | BestShot
    | TrackEnded
    | ReceiptScanned
    | ReceiptReceived
    | ScanCaptured
    | CheckoutQueued
    | CardReceived
    | SightingReported,
    Field(discriminator="event"),
]
EventSink = Callable[[KioskEvent], None]

_EVENT: TypeAdapter[KioskEvent] = TypeAdapter(KioskEvent)
E = TypeVar("E", bound=KioskEventBase)


class InvalidEvent(ValueError):
    """A line that is not a kiosk event: unknown kind, missing or extra fields, bad values."""


def parse_event(line: str | bytes) -> KioskEvent:
    """The event one JSON line holds, as its class; `InvalidEvent` says what is wrong."""
    try:
        return _EVENT.validate_json(line)
    except ValidationError as error:
        detail = "; ".join(problems(error, whole="line"))
        raise InvalidEvent(f"not a kiosk event: {detail}") from None


class JsonLinesWriter:
    """Appends events to a file (or stream), one JSON object per line, flushed each time."""

    def __init__(self, target: Path | IO[str]) -> None:
        self._lock = threading.Lock()
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._stream: IO[str] = target.open("a", encoding="utf-8")
            self._owned = True
        else:
            self._stream = target
            self._owned = False

    def __call__(self, event: KioskEvent) -> None:
        line = event.model_dump_json()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class EventCollector:
    """Keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[KioskEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: KioskEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        """The events of class `kind`, in the order they came."""
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]
