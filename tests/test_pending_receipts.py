"""The till's checkout state machine on its own, with a fake clock: scans and receipts matched
up in either order, duplicates, expiry, checkouts that never bring a card, nothing unbounded.
Then the service's outbox adapter, which reports dead letters through the real uplink."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from contract import (
    CheckoutRequest,
    CheckoutResponse,
    LineItem,
    Preferences,
    Receipt,
    VipCard,
)
from kiosk_app.pending_receipts import IN_FLIGHT_TTL_S, SCAN_TTL_S, Due, PendingReceipts
from kiosk_app.service import _ReportingOutbox
from kiosk_app.uplink import Uplink

GRACE_S = 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def receipt(number: str = "R-1") -> Receipt:
    return Receipt(
        number=number,
        scanned_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        items=[
            LineItem(
                sku="S", name="Tea", category="tea", brand="", quantity=1, unit_price=Decimal("2")
            )
        ],
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pending(clock: FakeClock) -> PendingReceipts[str]:
    return PendingReceipts(grace_s=GRACE_S, clock=clock)


def empty(pending: PendingReceipts[str], **but: int) -> bool:
    sizes = {"waiting": 0, "scans": 0, "captures": 0, "bound": 0, "in_flight": 0} | but
    return pending.sizes() == sizes


def due_now(pending: PendingReceipts[str]) -> list[Due]:
    items = []
    while (item := pending.pop_due()) is not None:
        items.append(item)
    return items


def test_scan_then_receipt_binds_the_capture_taken_at_the_scan(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    scanned_at = clock.now
    assert pending.scan("R-1") is False
    assert pending.seconds_until_due() == GRACE_S
    assert pending.pop_due() is None  # the grace first
    clock.advance(GRACE_S)
    (scan,) = due_now(pending)
    assert scan.receipt is None and scan.number == "R-1" and scan.at == scanned_at
    assert pending.wants_capture("R-1")
    pending.captured("R-1", scan.at, "faces at the scan")

    clock.advance(600)  # the POS exports the receipt ten minutes later
    arrived = clock.now
    pending.receipt(receipt("R-1"), "http")
    assert pending.pop_due() is None
    clock.advance(GRACE_S)
    (item,) = due_now(pending)
    assert item.receipt is not None and item.source == "http"
    assert item.at == scanned_at and item.arrived == arrived  # bound to the scan's moment
    assert pending.bind("R-1") == (scanned_at, "faces at the scan")

    pending.queued("key-1", "R-1", item.arrived, 7)
    assert empty(pending, bound=1, in_flight=1)
    clock.advance(1.5)
    flight = pending.delivered("key-1")
    assert flight is not None and flight.track_id == 7 and flight.arrived == arrived
    assert pending.delivered("key-1") is None  # one card per checkout
    assert empty(pending, bound=1)
    assert pending.scan("R-1") is True  # a late scan: bound already, nothing kept
    assert empty(pending, bound=1)


def test_receipt_then_scan_within_the_grace_binds_to_the_scan_and_skips_its_capture(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.receipt(receipt("R-2"), "folder")
    clock.advance(1.0)
    scanned_at = clock.now
    assert pending.scan("R-2") is False
    clock.advance(GRACE_S)
    items = due_now(pending)
    assert [i.receipt is not None for i in items] == [True, False]  # receipt due first
    assert items[0].at == scanned_at  # the scan moved the receipt to its moment
    assert pending.bind("R-2") is None  # nothing captured yet: the binder takes the faces
    assert not pending.wants_capture("R-2")  # the scan's own capture is not needed
    pending.captured("R-2", items[1].at, "too late")  # a capture racing the bind is dropped
    assert empty(pending, bound=1)


def test_receipt_without_a_scan_is_bound_to_its_arrival(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    arrived = clock.now
    pending.receipt(receipt("R-3"), "http")
    clock.advance(GRACE_S)
    (item,) = due_now(pending)
    assert item.at == arrived and item.arrived == arrived
    assert pending.bind("R-3") is None
    assert empty(pending, bound=1)


def test_duplicate_scans_keep_the_latest_moment(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    assert pending.scan("R-4") is False
    clock.advance(30)
    second = clock.now
    assert pending.scan("R-4") is False  # scanned again before the receipt came
    assert pending.sizes()["scans"] == 1 and pending.waiting == 2
    clock.advance(GRACE_S)
    first_scan, second_scan = due_now(pending)
    pending.captured("R-4", first_scan.at, "first")
    pending.captured("R-4", second_scan.at, "second")
    assert pending.sizes()["captures"] == 1
    pending.receipt(receipt("R-4"), "http")
    clock.advance(GRACE_S)
    (item,) = due_now(pending)
    assert item.at == second
    assert pending.bind("R-4") == (second, "second")
    assert empty(pending, bound=1)


def test_duplicate_receipts_bind_twice_but_hold_one_checkout(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.scan("R-5")
    clock.advance(GRACE_S)
    (scan,) = due_now(pending)
    pending.captured("R-5", scan.at, "faces")
    pending.receipt(receipt("R-5"), "http")
    pending.receipt(receipt("R-5"), "http")  # the POS sent it twice
    clock.advance(GRACE_S)
    first, second = due_now(pending)
    assert pending.bind("R-5") == (scan.at, "faces")
    pending.queued("key-5", "R-5", first.arrived, 3)
    assert pending.bind("R-5") is None  # the capture went with the first
    pending.queued("key-5", "R-5", second.arrived, None)  # same idempotency key
    assert empty(pending, bound=1, in_flight=1)
    assert pending.delivered("key-5") is not None
    assert empty(pending, bound=1)


def test_an_unmatched_scan_and_its_capture_expire(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.scan("R-6")
    clock.advance(GRACE_S)
    (scan,) = due_now(pending)
    pending.captured("R-6", scan.at, "faces")
    assert empty(pending, scans=1, captures=1)
    clock.advance(SCAN_TTL_S)  # an hour after the scan, no receipt: both are forgotten
    arrived = clock.now
    pending.receipt(receipt("R-6"), "http")
    assert empty(pending, waiting=1)
    clock.advance(GRACE_S)
    (item,) = due_now(pending)
    assert item.at == arrived  # bound to its arrival, not to the stale scan
    assert pending.bind("R-6") is None


def test_a_receipt_within_the_ttl_keeps_its_capture(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.scan("R-7")
    clock.advance(GRACE_S)
    (scan,) = due_now(pending)
    pending.captured("R-7", scan.at, "faces")
    clock.advance(SCAN_TTL_S - GRACE_S - 1)  # the receipt comes just in time
    pending.receipt(receipt("R-7"), "http")
    clock.advance(GRACE_S)  # the capture is past the TTL once the grace is over
    (item,) = due_now(pending)
    assert item.at == scan.at
    assert pending.bind("R-7") == (scan.at, "faces")


def test_bound_numbers_are_remembered_for_the_ttl_only(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.receipt(receipt("R-8"), "http")
    clock.advance(GRACE_S)
    due_now(pending)
    pending.bind("R-8")
    clock.advance(SCAN_TTL_S - 1)
    assert pending.scan("R-8") is True
    clock.advance(2)
    assert pending.scan("R-8") is False  # an hour on, the number may be a new receipt
    assert empty(pending, waiting=1, scans=1)


@pytest.mark.parametrize("ending", ["dead letter", "given up"])
def test_a_checkout_that_dies_releases_what_it_held(
    pending: PendingReceipts[str], clock: FakeClock, ending: str
) -> None:
    pending.scan("R-9")
    clock.advance(GRACE_S)
    (scan,) = due_now(pending)
    pending.captured("R-9", scan.at, "faces")
    pending.receipt(receipt("R-9"), "http")
    clock.advance(GRACE_S)
    (item,) = due_now(pending)
    pending.bind("R-9")
    pending.queued("key-9", "R-9", item.arrived, 4)
    assert pending.release("key-9") is True  # the outbox declared it dead / could not take it
    assert pending.release("key-9") is False
    assert pending.delivered("key-9") is None  # a card after all (staff requeued): no track
    assert empty(pending, bound=1)  # only the number, so a late scan is still late
    clock.advance(SCAN_TTL_S + 1)
    pending.scan("R-10")
    clock.advance(GRACE_S)
    due_now(pending)
    assert empty(pending, scans=1)  # and that too goes after the TTL


def test_a_checkout_whose_end_was_never_reported_is_forgotten(
    pending: PendingReceipts[str], clock: FakeClock
) -> None:
    pending.queued("key-11", "R-11", clock.now, 1)
    clock.advance(IN_FLIGHT_TTL_S - 1)
    pending.queued("key-12", "R-12", clock.now, 2)
    assert pending.sizes()["in_flight"] == 2
    clock.advance(2)
    pending.queued("key-13", "R-13", clock.now, 3)
    assert pending.delivered("key-11") is None
    assert pending.delivered("key-12") is not None


def test_nothing_grows_without_bound(pending: PendingReceipts[str], clock: FakeClock) -> None:
    """A long day: every receipt scanned, half the checkouts never bring a card (unreported
    dead letters), a scan in ten never gets its receipt, duplicates everywhere."""
    peak: dict[str, int] = {}
    step_s = 30.0
    for n in range(20_000):  # about a week at one checkout every 30 s
        number = f"R-{n}"
        pending.scan(number)
        if n % 7 == 0:
            pending.scan(number)
        clock.advance(GRACE_S)
        for item in due_now(pending):
            if item.receipt is None and pending.wants_capture(item.number):
                pending.captured(item.number, item.at, "faces")
        if n % 10 != 0:
            for _ in range(2 if n % 5 == 1 else 1):
                pending.receipt(receipt(number), "http")
            clock.advance(GRACE_S)
            for item in due_now(pending):
                pending.bind(item.number)
                pending.queued(f"key-{n}", item.number, item.arrived, n)
            if n % 2 == 0:
                pending.delivered(f"key-{n}")
        clock.advance(step_s - 2 * GRACE_S)
        for table, size in pending.sizes().items():
            peak[table] = max(peak.get(table, 0), size)
    per_ttl = SCAN_TTL_S / step_s + 2
    assert peak["waiting"] <= 3
    assert peak["scans"] <= per_ttl and peak["captures"] <= per_ttl
    assert peak["bound"] <= per_ttl
    assert peak["in_flight"] <= IN_FLIGHT_TTL_S / step_s + 2
    assert pending.sizes()["in_flight"] < 20_000 / 2 / 2  # the leak: it used to hold them all


def test_the_grace_and_ttls_are_checked() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        PendingReceipts[str](grace_s=-1.0, clock=FakeClock())
    with pytest.raises(ValueError, match="TTLs"):
        PendingReceipts[str](grace_s=0.0, clock=FakeClock(), scan_ttl_s=0.0)


# --- the service's outbox adapter: the uplink's endings reach the state machine ----------


def checkout(key: str) -> CheckoutRequest:
    return CheckoutRequest(
        idempotency_key=key, captured_at=datetime.now(UTC), receipt=receipt(f"R-{key}")
    )


def card_answer() -> CheckoutResponse:
    card = VipCard(
        customer_id=None,
        status="unidentified",
        visit_count=0,
        member=None,
        purchase_level="new",
        lifetime_spend=Decimal(0),
        preferences=Preferences(categories=[], brands=[]),
        last_visits=[],
        recommendations=[],
        demographics=None,
        match_distance=None,
    )
    return CheckoutResponse(receipt_id=1, card=card, companions=[])


@pytest.mark.parametrize(
    ("status", "body", "ends"),
    [
        (422, b'{"error": "invalid_request", "detail": "bad body"}', True),  # dead letter
        (200, b"not json", True),  # delivered, but no card can be shown
        (200, None, False),  # a card: the service's on_card takes it instead
    ],
)
def test_the_uplinks_endings_are_reported_by_key(
    tmp_path: Path, status: int, body: bytes | None, ends: bool
) -> None:
    ended: list[str] = []
    cards: list[str] = []
    outbox = _ReportingOutbox(tmp_path / "outbox.sqlite3", ended.append)
    content = body if body is not None else card_answer().model_dump_json().encode()

    def cloud(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    uplink = Uplink(
        outbox,
        "http://cloud",
        "key",
        transport=httpx.MockTransport(cloud),
        on_card=lambda item, _: cards.append(item.idempotency_key),
    )
    key = f"k-{uuid.uuid4().hex}"
    try:
        assert not outbox.finished(key)  # never put
        outbox.put(checkout(key))
        assert not outbox.finished(key)  # pending: its card may still come
        assert uplink.deliver_once()
        assert ended == ([key] if ends else [])
        assert cards == ([] if ends else [key])
        assert outbox.finished(key)  # a receipt sent again brings no card
    finally:
        uplink.stop()
        outbox.close()
