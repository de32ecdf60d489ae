"""The cashier's "opt out" button: the next customer captured sends no face data.

Armed by the cashier when the customer at the counter declines recognition; the next capture
(a scan or a receipt, whichever binds first) consumes it, so exactly one checkout goes without
descriptors or crop. An armed latch that nobody uses expires after `hold_s`, so it never
silently applies to a later customer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class OptOutLatch:
    def __init__(self, *, hold_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.hold_s = hold_s
        self._clock = clock
        self._armed_at: float | None = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self._armed_at = self._clock()

    def cancel(self) -> None:
        with self._lock:
            self._armed_at = None

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._live()

    def _live(self) -> bool:
        return self._armed_at is not None and self._clock() - self._armed_at <= self.hold_s

    def __call__(self, number: str) -> bool:
        """Asked once per capture: True (and disarmed) when the cashier armed it."""
        with self._lock:
            live = self._live()
            self._armed_at = None
            return live
