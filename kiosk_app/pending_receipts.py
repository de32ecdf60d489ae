"""The till's checkout state machine: scans and receipts matched up, then followed to their card.

A receipt number scanned at the till (`scan`) marks the moment the customer stood at the
counter; the receipt itself (`receipt`, from the POS) may come before or after, up to
`SCAN_TTL_S` later. Both wait out the grace period in one queue ordered by when they are due
(`pop_due`): a due scan is captured (`wants_capture`, `captured`: the faces at the scan), a
due receipt is bound (`bind`: the capture taken at its scan, if any) and its checkout put in
the outbox (`queued`). Its card then comes back (`delivered`), or never does (`release`: dead
letter, given up, a duplicate of one already finished).

Everything here is bounded: scans, captures and bound numbers are forgotten after
`SCAN_TTL_S`, checkouts waiting for their card after `IN_FLIGHT_TTL_S` (the backstop for
an ending nobody reported), and the queue only holds items until they are due.

No threads, no I/O: the caller serialises calls (the service holds one lock around them) and
injects the clock, a callable returning monotonic seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from contract import Receipt

__all__ = ["IN_FLIGHT_TTL_S", "SCAN_TTL_S", "Due", "InFlight", "PendingReceipts"]

#: How long a scanned receipt number waits for its receipt from the POS (and a capture, or
#: a bound number for late scans, is remembered).
SCAN_TTL_S = 3600.0
#: How long a queued checkout waits for its card before it is forgotten (the cloud was
#: unreachable that long, or its ending went unreported): the customer has long gone.
IN_FLIGHT_TTL_S = 24 * 3600.0

CaptureT = TypeVar("CaptureT")


@dataclass(order=True)
class Due:
    """A scan or a receipt waiting out the grace period, ordered by `due`."""

    due: float
    at: float = field(compare=False)  # when the customer stood at the counter
    arrived: float = field(compare=False)  # when the receipt (or the scan) came in
    number: str = field(compare=False)
    receipt: Receipt | None = field(compare=False)  # None: a scan, to capture at `at`
    source: str = field(compare=False)


@dataclass(frozen=True)
class InFlight:
    """A checkout in the outbox, waiting for its card."""

    number: str
    arrived: float  # when its receipt came in (the card's latency is measured from here)
    track_id: int | None  # the customer's track, for the screen
    queued_at: float


class PendingReceipts(Generic[CaptureT]):
    """Scans and receipts matched by receipt number (see the module docstring).

    `CaptureT` is whatever the caller takes at a scan (the binder's `CounterSnapshot`); it is only
    held and handed back.
    """

    def __init__(
        self,
        *,
        grace_s: float,
        clock: Callable[[], float],
        scan_ttl_s: float = SCAN_TTL_S,
        in_flight_ttl_s: float = IN_FLIGHT_TTL_S,
    ) -> None:
        if grace_s < 0 or scan_ttl_s <= 0 or in_flight_ttl_s <= 0:
            raise ValueError("need grace_s >= 0 and positive TTLs")
        self.grace_s = grace_s
        self.scan_ttl_s = scan_ttl_s
        self.in_flight_ttl_s = in_flight_ttl_s
        self._clock = clock
        self._queue: list[Due] = []
        self._scans: dict[str, float] = {}  # receipt number -> when it was scanned
        self._captures: dict[str, tuple[float, CaptureT]] = {}  # taken at the scan
        self._bound: dict[str, float] = {}  # receipt numbers bound, for late scans
        self._in_flight: dict[str, InFlight] = {}  # idempotency key -> its checkout

    # ---- inputs ------------------------------------------------------------------------

    def scan(self, number: str) -> bool:
        """The cashier scanned `number`: the customer is at the counter now.

        True when the number is bound already (a late scan: nothing to do), else it waits
        out the grace to be captured, and a receipt of that number waiting its grace is
        bound to this moment.
        """
        now = self._clock()
        self._prune(now)
        if number in self._bound:
            return True
        self._scans[number] = now
        for item in self._queue:  # its receipt came first and waits out the grace
            if item.number == number and item.receipt is not None:
                item.at = now
        heapq.heappush(self._queue, Due(now + self.grace_s, now, now, number, None, "scanner"))
        return False

    def receipt(self, receipt: Receipt, source: str) -> None:
        """A receipt came in: bound, once the grace has passed, to its scan's moment (if it
        was scanned) or to now."""
        now = self._clock()
        self._prune(now)
        at = self._scans.get(receipt.number, now)
        heapq.heappush(
            self._queue, Due(now + self.grace_s, at, now, receipt.number, receipt, source)
        )

    # ---- the binding side --------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Scans and receipts still waiting out their grace."""
        return len(self._queue)

    def seconds_until_due(self) -> float | None:
        """How long until the next item is due (0 when one is); None when none waits."""
        if not self._queue:
            return None
        return max(0.0, self._queue[0].due - self._clock())

    def pop_due(self) -> Due | None:
        """The next item whose grace has passed, taken off the queue; None if none is due."""
        if not self._queue or self._queue[0].due > self._clock():
            return None
        return heapq.heappop(self._queue)

    def wants_capture(self, number: str) -> bool:
        """False when its receipt came within the grace and is bound already."""
        return number not in self._bound

    def captured(self, number: str, at: float, capture: CaptureT) -> None:
        """The faces taken at `number`'s scan (at `at`), kept for its receipt."""
        self._prune(self._clock())
        if number not in self._bound:
            self._captures[number] = (at, capture)

    def bind(self, number: str) -> tuple[float, CaptureT] | None:
        """The receipt `number` is being bound: its scan's capture (and when), if one was
        taken. From now on a scan of `number` is late (for `SCAN_TTL_S`)."""
        now = self._clock()
        stored = self._captures.pop(number, None)  # taken before the prune: a receipt that
        self._prune(now)  # came in time keeps its capture, however long its grace
        self._bound[number] = now
        self._scans.pop(number, None)
        return stored

    def queued(self, key: str, number: str, arrived: float, track_id: int | None) -> None:
        """Its checkout (idempotency `key`) goes into the outbox; the card will come back."""
        now = self._clock()
        self._prune(now)
        self._in_flight[key] = InFlight(number, arrived, track_id, now)

    # ---- the uplink side ---------------------------------------------------------------

    def delivered(self, key: str) -> InFlight | None:
        """Its card came: what was kept for it (None when nothing was, or no longer)."""
        return self._in_flight.pop(key, None)

    def release(self, key: str) -> bool:
        """Its card will never come (dead letter, given up, unreadable answer, a duplicate
        of a finished checkout): forget it. True when it was held."""
        return self._in_flight.pop(key, None) is not None

    # ---- housekeeping ------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        """How much is held, by table (for tests and a status line)."""
        return {
            "waiting": len(self._queue),
            "scans": len(self._scans),
            "captures": len(self._captures),
            "bound": len(self._bound),
            "in_flight": len(self._in_flight),
        }

    def _prune(self, now: float) -> None:
        cutoff = now - self.scan_ttl_s
        for table in (self._scans, self._bound):
            for number in [n for n, at in table.items() if at < cutoff]:
                del table[number]
        for number in [n for n, (at, _) in self._captures.items() if at < cutoff]:
            del self._captures[number]
        flight_cutoff = now - self.in_flight_ttl_s
        for key in [k for k, f in self._in_flight.items() if f.queued_at < flight_cutoff]:
            del self._in_flight[key]
