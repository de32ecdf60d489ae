"""Run the vision pipeline over a frame source: capture thread -> processing loop -> events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from kiosk_app.capture import CaptureStats, CaptureThread
from kiosk_app.events import EventSink
from kiosk_app.frames import Frame
from kiosk_app.pipeline import FacePipeline, FrameResult, StageTimer
from kiosk_app.settings import KioskSettings
from kiosk_app.sources import FrameSource, open_source
from models.store import ModelStore

log = structlog.get_logger(__name__)


class TimedSource:
    """Wraps a source to time each read (the decode stage) on the capture thread."""

    def __init__(self, inner: FrameSource, timer: StageTimer) -> None:
        self._inner = inner
        self._timer = timer
        self.name = inner.name
        self.live = inner.live

    def open(self) -> None:
        self._inner.open()

    def read(self) -> Frame | None:
        started = time.perf_counter()
        frame = self._inner.read()
        if frame is not None:
            self._timer.add("decode", time.perf_counter() - started)
        return frame

    def close(self) -> None:
        self._inner.close()


class PacedSource:
    """Plays a file at its own frame rate, as a camera would deliver it (demos, benchmarks).

    Without pacing a file is read as fast as the pipeline takes frames, which no camera does.
    """

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.name = inner.name
        self.live = inner.live
        self._start: float | None = None
        self._first_ts = 0.0

    def open(self) -> None:
        self._inner.open()
        self._start = None

    def read(self) -> Frame | None:
        frame = self._inner.read()
        if frame is None:
            return None
        if self._start is None:
            self._start, self._first_ts = time.monotonic(), frame.timestamp
        due = self._start + (frame.timestamp - self._first_ts)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return frame

    def close(self) -> None:
        self._inner.close()


class LoopedSource:
    """Plays a file or folder over and over, as one endless stream (a shop-window demo, a
    long benchmark). Indices and timestamps keep counting up across the loops."""

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.name = inner.name
        self.live = inner.live
        self.loops = 0
        self._index_offset = 0
        self._time_offset = 0.0
        self._last: Frame | None = None
        self._step = 0.04

    def open(self) -> None:
        self._inner.open()

    def read(self) -> Frame | None:
        frame = self._inner.read()
        if frame is None:
            if self._last is None:
                return None  # an empty source: nothing to loop
            self._inner.close()
            self._inner.open()
            self.loops += 1
            self._index_offset = self._last.index + 1
            self._time_offset = self._last.timestamp + self._step
            frame = self._inner.read()
            if frame is None:
                return None
        looped = Frame(
            frame.index + self._index_offset, frame.timestamp + self._time_offset, frame.image
        )
        if self._last is not None and looped.timestamp > self._last.timestamp:
            self._step = looped.timestamp - self._last.timestamp
        self._last = looped
        return looped

    def close(self) -> None:
        self._inner.close()


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
    settings: KioskSettings,
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
