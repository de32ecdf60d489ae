"""The till's background service: camera → pipeline → binder, receipts in, checkouts out.

Threads: capture (its own), processing (detect, track, observe who stands at the counter),
binding (waits out each receipt's grace period, binds, puts the checkout in the outbox),
the uplink (delivers the outbox in order), and the receipt inputs (local HTTP endpoint, export
folder). Nothing the camera side does can block a receipt, and nothing the network does can
block the camera side: the outbox sits between them.

A receipt number scanned at the till (`scan`, the cashier's keyboard-wedge scanner) marks the
moment the customer stood at the counter: the faces are taken then, and the checkout goes
when the receipt itself arrives from the POS, however much later (up to `SCAN_TTL_S`).
That matching, and following each checkout to its card, is `PendingReceipts`; this class
only wires it to the threads, the binder and the outbox.

For a window: `latest()` is the newest frame with its tracked faces, `status()` a snapshot
for a status bar, and `on_card` receives each checkout's full answer (the VIP card).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from contract import CheckoutResponse, Receipt
from kiosk_app.binding import Binding, CheckoutBinder, CounterSnapshot, checkout_id
from kiosk_app.capture import CaptureStats, CaptureThread
from kiosk_app.events import (
    CardReceived,
    CheckoutQueued,
    EventSink,
    ReceiptReceived,
    ReceiptScanned,
    ScanCaptured,
)
from kiosk_app.frames import Frame
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.outbox import Outbox, OutboxItem, checkout_body, outbox_path
from kiosk_app.pending_receipts import SCAN_TTL_S, Due, PendingReceipts
from kiosk_app.pipeline import FacePipeline, FrameResult, StageTimer
from kiosk_app.receipts.folder_watcher import ExportFolderWatcher
from kiosk_app.receipts.http_endpoint import LocalReceiptServer
from kiosk_app.receipts.intake import ReceiptIntake
from kiosk_app.sightings import SightingReporter
from kiosk_app.sources import FrameSource, LoopedSource, PacedSource, TimedSource, open_source
from models.store import ModelStore

if TYPE_CHECKING:
    from kiosk_app.uplink import LinkState

log = structlog.get_logger(__name__)

__all__ = ["SCAN_TTL_S", "CardHandler", "KioskService", "RunOptions", "ServiceStatus"]

CardHandler = Callable[[CheckoutResponse, int | None], None]


@dataclass(frozen=True)
class RunOptions:
    """How this run plays its source and asks about opt-outs: not the machine's configuration
    (that is the `KioskConfig` the service takes), what a window, a demo or a benchmark decides."""

    resize: tuple[int, int] | None = None
    #: play a video file at its own frame rate, as a camera delivers frames
    realtime: bool = False
    #: play a video file or folder again and again (demos, long benchmarks)
    loop: bool = False
    #: asked with the receipt number when the customer is captured: True sends no face data
    opt_out: Callable[[str], bool] = field(default=lambda number: False)


class _ReportingOutbox(Outbox):
    """The outbox, telling `on_ended` the idempotency key of each checkout whose card will
    never come: declared dead, or delivered with an answer that could not be read."""

    def __init__(self, path: Path, on_ended: Callable[[str], None]) -> None:
        super().__init__(path)
        self._on_ended = on_ended

    def finished(self, key: str) -> bool:
        """True when `key` was put before and is delivered or dead: putting it again stores
        nothing and no card comes for it."""
        rows = self._read("SELECT state FROM outbox WHERE idempotency_key = ?", (key,))
        return bool(rows) and rows[0][0] != "pending"

    def mark_dead(self, item_id: int, status: int, error: str) -> None:
        super().mark_dead(item_id, status, error)
        self._ended(item_id)

    def mark_delivered(
        self, item_id: int, response: CheckoutResponse | None, latency_ms: float
    ) -> None:
        super().mark_delivered(item_id, response, latency_ms)
        if response is None:
            self._ended(item_id)

    def _ended(self, item_id: int) -> None:
        item = self.get(item_id)
        if item is not None:
            self._on_ended(item.idempotency_key)


@dataclass(frozen=True)
class ServiceStatus:
    """A snapshot for a status bar."""

    frames: int
    capture: CaptureStats
    outbox_pending: int | None  # None when the outbox could not be read
    outbox_dead: int | None
    cloud: LinkState
    cloud_detail: str
    source_ended: bool


class KioskService:
    def __init__(
        self,
        config: KioskConfig,
        sink: EventSink,
        *,
        options: RunOptions | None = None,
        store: ModelStore | None = None,
        on_frame: Callable[[FrameResult], None] | None = None,
        on_card: CardHandler | None = None,
    ) -> None:
        store = store if store is not None else ModelStore()
        self.config = config
        options = options if options is not None else RunOptions()
        self.options = options
        self._sink = sink
        self._on_frame = on_frame
        self._on_card = on_card
        self.timer = StageTimer()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline = FacePipeline(
            config.pipeline_settings(), sink, store=store, timer=self.timer
        )
        self.binder = CheckoutBinder(
            self.pipeline.shots,
            self.pipeline.describe,
            device=config.device,
            window_s=config.binding_window_s,
            grace_s=config.binding_grace_s,
        )
        self._pending_cond = threading.Condition()
        self._pending: PendingReceipts[CounterSnapshot] = PendingReceipts(
            grace_s=config.binding_grace_s, clock=time.monotonic
        )
        self._outbox = _ReportingOutbox(outbox_path(config.data_dir), self._checkout_ended)
        self.outbox: Outbox = self._outbox
        from kiosk_app.uplink import Uplink

        self.uplink = Uplink(self.outbox, config.cloud_url, config.api_key, on_card=self._card)
        self.entrance = config.mode == "entrance"
        self.sightings = (
            SightingReporter(
                config.cloud_url,
                config.api_key,
                self.pipeline.shots,
                self.pipeline.describe,
                sink,
                best_k=config.shots.best_k,
            )
            if self.entrance
            else None
        )
        self.intake = ReceiptIntake(config.data_dir / "dead-letter", self._receipt)
        self.receipt_server = LocalReceiptServer(self.intake, port=config.receipts_port)
        self.watcher = (
            ExportFolderWatcher(self.intake, config.receipts_folder)
            if config.receipts_folder is not None
            else None
        )
        source: FrameSource = open_source(config.source, resize=options.resize)
        if options.loop and not source.live:
            source = LoopedSource(source)
        if options.realtime and not source.live:
            source = PacedSource(source)
        self._capture = CaptureThread(TimedSource(source, self.timer), queue_size=config.queue_size)
        self._latest: tuple[Frame, FrameResult] | None = None
        self._latest_lock = threading.Lock()
        self._stop = threading.Event()
        self._binding = threading.Event()
        self._threads: list[threading.Thread] = []
        self.frames = 0
        self.source_ended = threading.Event()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def receipts_url(self) -> str:
        return f"{self.receipt_server.url}/receipts"

    def start(self) -> None:
        self.uplink.start()
        if self.sightings is not None:  # entrance: no receipts, sightings only
            self.sightings.start()
        else:
            self.receipt_server.start()
            if self.watcher is not None:
                self.watcher.start()
        self._capture.start()
        for name, target in (("processing", self._process_loop), ("binding", self._bind_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "kiosk_service_started",
            mode=self.config.mode,
            receipts=None if self.entrance else self.receipts_url,
            device=self.config.device,
        )

    def stop(self) -> None:
        self._stop.set()
        with self._pending_cond:
            self._pending_cond.notify_all()
        self._capture.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.sightings is not None:
            self.sightings.stop()
        else:
            if self.watcher is not None:
                self.watcher.stop()
            self.receipt_server.stop()
        self.pipeline.finish()
        self.uplink.stop()
        self.outbox.close()
        log.info("kiosk_service_stopped", frames=self.frames)

    def _idle_binding(self) -> bool:
        return not self._binding.is_set()

    def drain(self, timeout_s: float) -> bool:
        """Wait until every receipt received so far is bound and delivered (or dead)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._pending_cond:
                pending = self._pending.waiting
            if pending == 0 and self.outbox.stats().pending == 0 and self._idle_binding():
                return True
            self.uplink.wake()
            time.sleep(0.05)
        return False

    # ---- threads -------------------------------------------------------------------------

    def _process_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._capture.get(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # a broken source is logged; receipts still flow
                log.exception("capture_failed")
                break
            if frame is None:
                break
            result = self.pipeline.process(frame)
            self.binder.observe(result)
            if self.sightings is not None:
                self.sightings.observe(result)
            self.frames += 1
            with self._latest_lock:
                self._latest = (frame, result)
            if self._on_frame is not None:
                self._on_frame(result)
        self.source_ended.set()

    def latest(self) -> tuple[Frame, FrameResult] | None:
        """The newest processed frame and its faces (any thread; the GUI polls this)."""
        with self._latest_lock:
            return self._latest

    def status(self) -> ServiceStatus:
        pending: int | None
        dead: int | None
        try:
            outbox = self.outbox.stats()
            pending, dead = outbox.pending, outbox.dead
        except Exception:  # a status bar must not fail; the outbox logs it
            pending = dead = None
        cloud, detail, _ = self.uplink.health.snapshot()
        return ServiceStatus(
            frames=self.frames,
            capture=self._capture.stats,
            outbox_pending=pending,
            outbox_dead=dead,
            cloud=cloud,
            cloud_detail=detail,
            source_ended=self.source_ended.is_set(),
        )

    def scan(self, number: str) -> None:
        """The cashier scanned (or typed) a receipt number: the customer is at the counter now."""
        with self._pending_cond:
            late = self._pending.scan(number)
            if not late:
                self._pending_cond.notify_all()
        self._sink(ReceiptScanned(number=number, already_bound=late))

    def _receipt(self, receipt: Receipt, source: str) -> None:
        """A valid receipt from any input (their threads): bind it once the grace has passed."""
        with self._pending_cond:
            self._pending.receipt(receipt, source)
            self._pending_cond.notify_all()
        self._sink(ReceiptReceived(number=receipt.number, source=source))

    def _bind_loop(self) -> None:
        while not self._stop.is_set():
            with self._pending_cond:
                item = self._pending.pop_due()
                while not self._stop.is_set() and item is None:
                    self._pending_cond.wait(timeout=self._pending.seconds_until_due())
                    item = self._pending.pop_due()
                if self._stop.is_set() or item is None:
                    return
                self._binding.set()
            try:
                if item.receipt is None:
                    self._capture_scan(item)
                else:
                    self._bind(item, item.receipt)
            except Exception:  # one receipt must not stop the others
                log.exception("binding_failed", receipt=item.number)
            finally:
                self._binding.clear()

    def _capture_scan(self, item: Due) -> None:
        with self._pending_cond:
            if not self._pending.wants_capture(item.number):  # its receipt was bound already
                return
        capture = self.binder.capture(item.at, opt_out=self.options.opt_out(item.number))
        with self._pending_cond:
            self._pending.captured(item.number, item.at, capture)
        self._sink(
            ScanCaptured(
                number=item.number, track_id=capture.primary_track, opted_out=capture.opted_out
            )
        )

    def _bind(self, item: Due, receipt: Receipt) -> None:
        with self._pending_cond:
            stored = self._pending.bind(receipt.number)
        if stored is not None:
            captured = stored[1]
            binding = self.binder.bind(receipt, stored[0], captured=captured)
            opt_out = captured.opted_out
        else:
            opt_out = self.options.opt_out(receipt.number)
            binding = self.binder.bind(receipt, item.at, opt_out=opt_out)
        key = binding.request.idempotency_key
        with structlog.contextvars.bound_contextvars(checkout_id=checkout_id(key)):
            self._queue(item, receipt, binding, stored is not None, opt_out)

    def _queue(
        self, item: Due, receipt: Receipt, binding: Binding, scanned: bool, opt_out: bool
    ) -> None:
        key = binding.request.idempotency_key
        # A receipt sent again after its checkout was delivered or died brings no card.
        if not self._outbox.finished(key):
            with self._pending_cond:
                self._pending.queued(key, receipt.number, item.arrived, binding.primary_track)
        try:
            self.outbox.put(binding.request)
        except BaseException:  # given up (the outbox is full, the disk failed): no card
            self._checkout_ended(key)
            raise
        self.uplink.wake()
        body = checkout_body(binding.request)
        self._sink(
            CheckoutQueued(
                number=receipt.number,
                idempotency_key=key,
                track_id=binding.primary_track,
                companions=tuple(binding.companion_tracks),
                embeddings=len(binding.request.embeddings),
                opted_out=opt_out,
                scanned=scanned,
                bytes=len(body.encode()),
            )
        )

    def _checkout_ended(self, key: str) -> None:
        """The checkout `key` will bring no card (dead, given up): forget what it held."""
        with self._pending_cond:
            released = self._pending.release(key)
        if released:
            log.info("checkout_released", key=key)

    def _card(self, item: OutboxItem, response: CheckoutResponse) -> None:
        with self._pending_cond:
            flight = self._pending.delivered(item.idempotency_key)
        track_id = flight.track_id if flight is not None else None
        latency_ms = (time.monotonic() - flight.arrived) * 1000 if flight is not None else None
        card = response.card
        self._sink(
            CardReceived(
                idempotency_key=item.idempotency_key,
                receipt_id=response.receipt_id,
                customer_id=card.customer_id,
                status=card.status,
                visit_count=card.visit_count,
                member=card.member is not None,
                purchase_level=card.purchase_level,
                decision_id=card.decision_id,
                track_id=track_id,
                latency_ms=round(latency_ms, 1) if latency_ms is not None else None,
            )
        )
        if self._on_card is not None:  # the uplink has logged the card (`vip_card`)
            self._on_card(response, track_id)
