"""Runs the kiosk service behind a window: every blocking step off the GUI thread.

`ServiceHost` builds and starts `KioskService` on a worker thread (loading models and opening
the camera take seconds), then hands the GUI what it needs through queued signals: pipeline
events, each checkout's VIP card, a status snapshot every second, and any failure as text.
The window pulls the newest frame itself on a timer (`latest()`), so the pipeline never waits
for painting and the GUI never waits for the pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog
from PySide6.QtCore import QObject, Signal

from contract import CheckoutResponse
from kiosk_app.cloud_client import CloudClient, CloudError
from kiosk_app.events import (
    BestShot,
    CheckoutQueued,
    JsonLinesWriter,
    KioskEvent,
    ReceiptReceived,
    ReceiptScanned,
    ScanCaptured,
    SightingReported,
)
from kiosk_app.frames import Frame
from kiosk_app.gui.workers import run_in_thread
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.opt_out import OptOutLatch
from kiosk_app.pipeline import FrameResult
from kiosk_app.service import KioskService, RunOptions, ServiceStatus

log = structlog.get_logger(__name__)

#: How often the cloud is probed when no checkout has said whether it is reachable.
PROBE_INTERVAL_S = 15.0


@dataclass(frozen=True)
class HostStatus:
    service: ServiceStatus
    fps: float
    cloud: str
    cloud_detail: str


class ServiceHost(QObject):
    started = Signal()
    failed = Signal(str)  # a worker's error, in words for the screen
    pipeline_event = Signal(object)  # a KioskEvent (pipeline, binding, sighting)
    card = Signal(object, object)  # CheckoutResponse, primary track id (or None)
    status = Signal(object)  # HostStatus, once a second
    stopped = Signal()

    def __init__(
        self,
        config: KioskConfig,
        *,
        realtime: bool = True,
        loop: bool = False,
        on_frame: Callable[[FrameResult], None] | None = None,
        cloud_transport: httpx.BaseTransport | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.config = config
        self._cloud_transport = cloud_transport  # tests: the cashier's calls, at the HTTP level
        self.realtime = realtime
        self.loop = loop
        self.opt_out = OptOutLatch()
        self.service: KioskService | None = None
        self._on_frame = on_frame
        self._writer: JsonLinesWriter | None = None
        self._stop = threading.Event()
        self._status_thread: threading.Thread | None = None
        self.start_error: str | None = None

    # ---- lifecycle (GUI thread) ------------------------------------------------------------

    def start(self) -> None:
        run_in_thread(self._build, self._built, self._build_failed)

    def _build(self) -> KioskService:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._writer = JsonLinesWriter(config.data_dir / "events.jsonl")
        service = KioskService(
            config,
            self._sink,
            options=RunOptions(realtime=self.realtime, loop=self.loop, opt_out=self.opt_out),
            on_frame=self._on_frame,
            on_card=self._card,
        )
        service.start()
        return service

    def _built(self, service: KioskService) -> None:
        if self._stop.is_set():  # closed while starting
            threading.Thread(target=service.stop, daemon=True).start()
            return
        self.service = service
        self._status_thread = threading.Thread(
            target=self._status_loop, name="gui-status", daemon=True
        )
        self._status_thread.start()
        self.started.emit()

    def _build_failed(self, error: Exception) -> None:
        self.start_error = str(error)
        self.failed.emit(f"the kiosk could not start: {error}")

    def stop(self) -> None:
        """Stop everything (blocks for up to a few seconds: call it when the window closes)."""
        self._stop.set()
        service, self.service = self.service, None
        if service is not None:
            service.stop()
        if self._status_thread is not None:
            self._status_thread.join(timeout=5)
        if self._writer is not None:
            self._writer.close()
        self.stopped.emit()

    # ---- for the window --------------------------------------------------------------------

    def latest(self) -> tuple[Frame, FrameResult] | None:
        service = self.service
        return service.latest() if service is not None else None

    def scan(self, number: str) -> None:
        if self.service is None:
            if self.start_error is not None:
                raise RuntimeError(f"the kiosk is not running: {self.start_error}")
            raise RuntimeError("the kiosk is still starting")
        self.service.scan(number)

    @property
    def receipts_url(self) -> str | None:
        service = self.service
        return service.receipts_url if service is not None and not service.entrance else None

    def cloud(self) -> CloudClient:
        return CloudClient(
            self.config.cloud_url, self.config.api_key, transport=self._cloud_transport
        )

    # ---- worker threads --------------------------------------------------------------------

    def _sink(self, event: KioskEvent) -> None:
        if self._writer is not None:
            self._writer(event)
        if isinstance(event, BestShot):
            return  # many per second and of no use on screen
        self.pipeline_event.emit(event)

    def _card(self, response: CheckoutResponse, track_id: int | None) -> None:
        self.card.emit(response, track_id)

    def _status_loop(self) -> None:
        client = self.cloud()
        last_frames, last_at = 0, time.monotonic()
        probed_at = 0.0
        probe: tuple[str, str] = ("unknown", "")
        while not self._stop.wait(1.0):
            service = self.service
            if service is None:
                break
            try:
                snapshot = service.status()
            except Exception as error:  # shown, never fatal
                self.failed.emit(f"status unavailable: {error}")
                continue
            now = time.monotonic()
            fps = (snapshot.frames - last_frames) / max(1e-6, now - last_at)
            last_frames, last_at = snapshot.frames, now
            _, _, uplink_at = service.uplink.health.snapshot()
            fresh = uplink_at is not None and now - uplink_at < PROBE_INTERVAL_S
            if not fresh and now - probed_at >= PROBE_INTERVAL_S:
                probed_at = now
                probe = _probe(client)
            cloud, detail = (snapshot.cloud, snapshot.cloud_detail) if fresh else probe
            self.status.emit(HostStatus(snapshot, fps, cloud, detail))


def _probe(client: CloudClient) -> tuple[str, str]:
    try:
        client.device()
    except CloudError as error:
        state = "refused" if error.status in (401, 403) else "offline"
        return state, str(error)
    return "online", ""


def describe_event(event: KioskEvent) -> str | None:
    """One line for the window's activity list, or None for events not worth showing."""
    match event:
        case ReceiptReceived():
            return f"receipt {event.number} received ({event.source})"
        case ReceiptScanned():
            if event.already_bound:
                return f"receipt {event.number} scanned: already sent"
            return f"receipt {event.number} scanned"
        case ScanCaptured():
            who = (
                "opted out"
                if event.opted_out
                else (f"customer #{event.track_id}" if event.track_id is not None else "no face")
            )
            return f"receipt {event.number}: {who} at the counter"
        case CheckoutQueued():
            if event.opted_out:
                return f"receipt {event.number} queued without face data (opted out)"
            if event.track_id is None:
                return f"receipt {event.number} queued: nobody at the counter"
            return f"receipt {event.number} queued for customer #{event.track_id}"
        case SightingReported():
            label = "VIP" if event.is_vip else event.status
            return f"visitor #{event.track_id}: {label} ({event.visitors_today} today)"
    return None
