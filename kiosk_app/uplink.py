"""The uplink: one thread that sends the outbox's checkouts to the cloud, in order.

Each checkout is POSTed to ``{base_url}/v1/checkouts`` with the device's ``X-API-Key``,
its body exactly as stored. What the answer decides:

- 2xx: delivered; the cloud's CheckoutResponse is stored and handed to ``on_card``.
- a timeout, a connection error, 5xx, 408, 425 or 429: retried with exponential backoff
  (``backoff_initial_s`` doubling up to ``backoff_max_s``, +-10 % jitter, at least what a
  Retry-After asks, up to the maximum: `cloud_transport.Backoff`), and the items behind it
  wait: delivery stays in order. A resend is safe: the cloud answers a known idempotency
  key from its first record.
- ``hold_statuses`` (by default 401, 403, 404, 405, 407 and any 3xx): the cloud refuses
  this *device* or the URL is wrong (a bad or revoked API key, a wrong base URL), not this
  checkout, so it is retried with backoff like an outage rather than dead-lettered: every
  receipt would otherwise be declared dead one after another until staff requeued them
  all. It goes on by itself once the configuration is fixed.
- any other 4xx (422 a body the cloud rejects, 400, 409, 413, ...): the item is dead
  (kept in the outbox with the ErrorBody's detail, for staff), and the next one goes on.

Every outcome is one structured log line with the outbox depth; the API key and the body
(face descriptors) are never logged. The thread never raises: an unexpected error is logged
and retried after a pause. `stop()` returns promptly, also during a backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from typing import Literal

import httpx
import structlog
from pydantic import ValidationError

from contract import CheckoutResponse
from kiosk_app import cloud_transport
from kiosk_app.binding import checkout_id
from kiosk_app.outbox import Outbox, OutboxItem

__all__ = [
    "CardCallback",
    "LinkHealth",
    "Uplink",
    "DEFAULT_HOLD_STATUSES",
]

log = structlog.get_logger(__name__)

CardCallback = Callable[[OutboxItem, CheckoutResponse], None]

#: the device's credentials or the URL are wrong, not the checkout: hold, do not dead-letter
DEFAULT_HOLD_STATUSES: frozenset[int] = frozenset({401, 403, 404, 405, 407})


def _error_detail(response: httpx.Response) -> str:
    """The ErrorBody's "error: detail" (with its field messages), else "HTTP status: body"."""
    return cloud_transport.error_from_response(response).summary


LinkState = Literal["unknown", "online", "refused", "offline"]
"""What the device knows of its link to the cloud (see `LinkHealth`)."""


class LinkHealth:
    """What the last exchange with the cloud said, for a status bar (thread-safe reads).

    `state` is "unknown" before any exchange, "online" after an answer the device could use,
    "refused" when the cloud refuses this device (bad key, wrong URL), "offline" after a
    network error or a server error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: LinkState = "unknown"
        self.detail = ""
        self.at: float | None = None

    def record(self, state: LinkState, detail: str = "") -> None:
        with self._lock:
            self.state, self.detail, self.at = state, detail, time.monotonic()

    def snapshot(self) -> tuple[LinkState, str, float | None]:
        with self._lock:
            return self.state, self.detail, self.at


class Uplink:
    """Delivers the outbox to the cloud from a background thread (see the module docstring).

    ``deliver_once()`` does one step synchronously (for tests, or a caller's own loop);
    ``start()`` runs steps in a daemon thread until ``stop()``. Call ``wake()`` after
    `Outbox.put` so the new checkout goes at once rather than at the next poll.
    ``clock`` (wall-clock seconds, as the outbox stores) and ``rng`` may be injected.
    """

    def __init__(
        self,
        outbox: Outbox,
        base_url: str,
        api_key: str,
        *,
        timeout: httpx.Timeout = cloud_transport.DEFAULT_TIMEOUT,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_card: CardCallback | None = None,
        transport: httpx.BaseTransport | None = None,
        poll_interval_s: float = 1.0,
        jitter: float = 0.1,
        hold_statuses: Collection[int] = DEFAULT_HOLD_STATUSES,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._backoff = cloud_transport.Backoff(
            backoff_initial_s, backoff_max_s, jitter, rng or random.Random()
        )
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        self.outbox = outbox
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/v1/checkouts"
        self._api_key = api_key
        self._timeout = timeout
        self.poll_interval_s = poll_interval_s
        self.hold_statuses = frozenset(hold_statuses)
        self._on_card = on_card
        self._transport = transport
        self._clock = clock
        self._client: httpx.Client | None = None
        self._step_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.health = LinkHealth()

    # the retry policy's bounds (`cloud_transport.Backoff`), adjustable while running

    @property
    def backoff_initial_s(self) -> float:
        return self._backoff.initial_s

    @backoff_initial_s.setter
    def backoff_initial_s(self, value: float) -> None:
        self._backoff.initial_s = value

    @property
    def backoff_max_s(self) -> float:
        return self._backoff.max_s

    @backoff_max_s.setter
    def backoff_max_s(self, value: float) -> None:
        self._backoff.max_s = value

    @property
    def jitter(self) -> float:
        return self._backoff.jitter

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Run the delivery loop in a daemon thread (no-op when it already runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="storesight-uplink", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now (after a put) instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop the thread: at once when it waits, after the request in flight otherwise
        (bounded by the HTTP timeout). True when the thread has ended within `timeout_s`."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("uplink_stop_timed_out", waited_s=timeout_s)
                return False
            self._thread = None
        with self._step_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        log.info("uplink_started", url=self.url, depth=self._depth())
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self.deliver_once():
                    failures = 0
                    continue  # the next one at once (or its backoff, computed below)
                wait = self._idle_wait_s()
                failures = 0
            except Exception:  # never out of the thread: the outbox keeps everything
                failures = min(failures + 1, 60)
                wait = self._backoff.delay_s(failures)
                log.exception("uplink_error", retry_in_s=round(wait, 3))
            self._wake.wait(wait)
        log.info("uplink_stopped", depth=self._depth())

    def _idle_wait_s(self) -> float:
        """Until the head item is due, at most one poll interval (other processes may put)."""
        head = self.outbox.head()
        if head is None:
            return self.poll_interval_s
        return min(self.poll_interval_s, max(0.0, head.next_attempt_at - self._clock()))

    # --- one step ------------------------------------------------------------------------

    def deliver_once(self) -> bool:
        """Attempt the oldest pending checkout if it is due; False when none was due.

        Returns True after any attempt, whatever its outcome (delivered, retry, dead).
        Outbox (disk) errors propagate; HTTP failures never do.
        """
        with self._step_lock:
            now = self._clock()
            item = self.outbox.next_due(now)
            if item is None:
                head = self.outbox.head()
                # A retry time far beyond any backoff means the wall clock stepped back:
                # do not sit on the queue for that long.
                if head is None or head.next_attempt_at - now <= 2 * self.backoff_max_s:
                    return False
                item = head
            self._attempt(item)
            return True

    def _client_for_step(self) -> httpx.Client:
        if self._client is None:
            self._client = cloud_transport.make_client(
                self.base_url,
                self._api_key,
                timeout=self._timeout,
                transport=self._transport,
                headers={"Content-Type": "application/json"},
            )
        return self._client

    def _attempt(self, item: OutboxItem) -> None:
        if item.body is None:  # cannot happen for a pending item; never send an empty body
            self.outbox.mark_dead(item.id, 0, "the stored body is missing")
            return
        with structlog.contextvars.bound_contextvars(checkout_id=checkout_id(item.idempotency_key)):
            self._send(item, item.body)

    def _send(self, item: OutboxItem, body: str) -> None:
        started = time.perf_counter()
        try:
            response = self._client_for_step().post(
                self.url,
                content=body.encode(),
                headers={cloud_transport.REQUEST_ID_HEADER: checkout_id(item.idempotency_key)},
            )
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
            self.health.record("offline", reason)
            self._retry(item, reason, None, None)
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        status = response.status_code
        if 200 <= status < 300:
            self.health.record("online")
            self._delivered(item, response, latency_ms)
        elif cloud_transport.is_transient(status):
            self.health.record("offline", f"HTTP {status}")
            self._retry(item, _error_detail(response), status, response)
        elif status in self.hold_statuses or 300 <= status < 400:
            self.health.record("refused", _error_detail(response))
            self._retry(item, _error_detail(response), status, response, held=True)
        elif 400 <= status < 500:
            self.health.record("online")  # it answered: the checkout, not the link, is bad
            self._dead(item, status, _error_detail(response))
        else:  # 1xx as a final answer: not a real server
            self._retry(item, f"unexpected HTTP status {status}", status, response)

    def _delivered(self, item: OutboxItem, response: httpx.Response, latency_ms: float) -> None:
        try:
            answer: CheckoutResponse | None = CheckoutResponse.model_validate_json(response.content)
        except ValidationError as error:
            # The cloud has stored it (2xx): resending would replay the same answer forever.
            answer = None
            log.error(
                "checkout_response_unreadable",
                item=item.id,
                key=item.idempotency_key,
                error=str(error).splitlines()[0],
            )
        self.outbox.mark_delivered(item.id, answer, latency_ms)
        log.info(
            "checkout_delivered",
            item=item.id,
            key=item.idempotency_key,
            receipt_number=item.receipt_number,
            receipt_id=answer.receipt_id if answer else None,
            status=response.status_code,
            latency_ms=round(latency_ms, 1),
            attempts=item.attempts + 1,
            depth=self._depth(),
        )
        if answer is None:
            return
        card = answer.card
        log.info(
            "vip_card",
            item=item.id,
            receipt_id=answer.receipt_id,
            customer_id=card.customer_id,
            status=card.status,
            visit_count=card.visit_count,
            purchase_level=card.purchase_level,
            member=card.member is not None,
            companions=len(answer.companions),
        )
        if self._on_card is not None:
            try:
                self._on_card(item, answer)
            except Exception:  # the receipt is delivered whatever the screen does
                log.exception("on_card_failed", item=item.id)

    def backoff_s(self, attempt: int) -> float:
        """The wait after the `attempt`-th failure (1-based), with jitter, at most the max."""
        return self._backoff.delay_s(attempt)

    def _retry(
        self,
        item: OutboxItem,
        error: str,
        status: int | None,
        response: httpx.Response | None,
        *,
        held: bool = False,
    ) -> None:
        now = self._clock()
        attempt = item.attempts + 1
        asked = cloud_transport.retry_after_s(response, now) if response is not None else None
        delay = self._backoff.delay_s(attempt, asked)
        self.outbox.mark_retry(item.id, error, now + delay, status=status)
        (log.error if held else log.warning)(
            "checkout_held" if held else "checkout_retry",
            item=item.id,
            key=item.idempotency_key,
            status=status,
            error=error,
            attempt=attempt,
            retry_in_s=round(delay, 3),
            depth=self._depth(),
        )

    def _dead(self, item: OutboxItem, status: int, error: str) -> None:
        self.outbox.mark_dead(item.id, status, error)
        log.error(
            "checkout_dead",
            item=item.id,
            key=item.idempotency_key,
            receipt_number=item.receipt_number,
            status=status,
            error=error,
            attempts=item.attempts + 1,
            depth=self._depth(),
        )

    def _depth(self) -> int | None:
        try:
            return self.outbox.depth()
        except Exception:  # only for a log line
            return None
