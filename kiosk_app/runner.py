"""Run the vision pipeline over a frame source: capture thread -> processing loop -> events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from kiosk_app.capture import CaptureStats, CaptureThread
from kiosk_app.events import EventSink
from kiosk_app.pipeline import FacePipeline, FrameResult, StageTimer
from kiosk_app.settings import PipelineSettings
from kiosk_app.sources import TimedSource, open_source
from models.store import ModelStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunReport:
    frames: int
    seconds: float
    capture: CaptureStats
    stage_ms: dict[str, float]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run(
    source_spec: str,
    settings: PipelineSettings,
    sink: EventSink,
    *,
    resize: tuple[int, int] | None = None,
    store: ModelStore | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    max_frames: int | None = None,
) -> RunReport:
    """Process `source_spec` until it ends (files), `stop` is set, or `max_frames` frames."""
    timer = StageTimer()
    source = TimedSource(open_source(source_spec, resize=resize), timer)
    pipeline = FacePipeline(settings, sink, store=store, timer=timer)
    capture = CaptureThread(source, queue_size=settings.queue_size)
    log.info("kiosk_run_started", source=source.name, live=source.live, mode=settings.mode)
    capture.start()
    started = time.perf_counter()
    frames = 0
    try:
        while stop is None or not stop.is_set():
            try:
                frame = capture.get(timeout=0.5)
            except TimeoutError:
                continue
            if frame is None:
                break
            result = pipeline.process(frame)
            frames += 1
            if on_frame is not None:
                on_frame(result)
            if max_frames is not None and frames >= max_frames:
                break
    finally:
        capture.stop()
        pipeline.finish()
    elapsed = time.perf_counter() - started
    report = RunReport(frames, elapsed, capture.stats, timer.ms_per_frame(frames))
    log.info(
        "kiosk_run_finished",
        frames=frames,
        fps=round(report.fps, 1),
        dropped=report.capture.dropped,
        reconnects=report.capture.reconnects,
    )
    return report
