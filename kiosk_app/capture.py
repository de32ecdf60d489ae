"""Reading a frame source in its own thread, through a small bounded queue.

Live sources (cameras, network streams) never wait for the consumer: when the queue is full
the oldest queued frame is dropped (and counted), so whoever calls `get` sees the freshest
frames. When a live source is lost the thread closes it and reopens it with exponential
backoff until `stop()`; a camera that is not there at start is retried the same way, so a
till camera may be plugged in late.

Files and folders block instead, so every frame is processed in order. They are opened by
`start()` in the caller's thread, so a missing or undecodable file raises `SourceError`
from `start()` (or `with CaptureThread(...)`); a read error in the middle of a file is
raised by `get()` once the frames read before it have been delivered.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog

from kiosk_app.frames import Frame
from kiosk_app.sources import FrameSource, SourceError
from storesight_common.lifecycle import StartStop

log = structlog.get_logger(__name__)


class CaptureTimeout(TimeoutError, queue.Empty):
    """`CaptureThread.get` found no frame within its timeout (catch either base class)."""


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """A consistent snapshot: `captured == dropped + delivered + queued` at every instant."""

    captured: int = 0  # frames read from the source and queued
    dropped: int = 0  # queued frames discarded unseen because the queue was full (live only)
    reconnects: int = 0  # successful reopens after a loss
    errors: int = 0  # losses, read errors and failed open attempts
    delivered: int = 0  # frames handed out by get()
    queued: int = 0  # frames waiting in the queue


class CaptureThread(StartStop):
    """Reads `source` in a daemon thread into a queue of at most `queue_size` frames.

    `drop_when_full` defaults to `source.live`. Reconnect delays start at
    `reconnect_initial_s` and double up to `reconnect_max_s`; they reset after the next frame
    is read. `sleep` replaces the backoff wait (tests); by default the wait is cut short by
    `stop()`. `stop()` waits at most `join_timeout_s` for the thread (a camera read can block
    in the driver); the thread is a daemon, so it never keeps the process alive.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        queue_size: int = 4,
        drop_when_full: bool | None = None,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        sleep: Callable[[float], None] | None = None,
        join_timeout_s: float = 15.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        if not (0 < reconnect_initial_s <= reconnect_max_s and math.isfinite(reconnect_max_s)):
            raise ValueError(
                "need 0 < reconnect_initial_s <= reconnect_max_s, got "
                f"{reconnect_initial_s} and {reconnect_max_s}"
            )
        self._source = source
        self._queue_size = queue_size
        self._drop = source.live if drop_when_full is None else drop_when_full
        self._initial_delay = reconnect_initial_s
        self._max_delay = reconnect_max_s
        self._delay = reconnect_initial_s
        self._sleep = sleep
        self._join_timeout_s = join_timeout_s

        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False
        self._ended = False
        self._error: BaseException | None = None
        self._captured = 0
        self._dropped = 0
        self._reconnects = 0
        self._errors = 0
        self._delivered = 0

    # ---- consumer side -------------------------------------------------------------------------

    @property
    def source(self) -> FrameSource:
        return self._source

    @property
    def drop_when_full(self) -> bool:
        return self._drop

    @property
    def stats(self) -> CaptureStats:
        with self._cond:
            return CaptureStats(
                captured=self._captured,
                dropped=self._dropped,
                reconnects=self._reconnects,
                errors=self._errors,
                delivered=self._delivered,
                queued=len(self._queue),
            )

    @property
    def alive(self) -> bool:
        """Whether the capture thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open a file or folder now (raising `SourceError`), then start the thread.

        A live source is opened by the thread, retrying with backoff until it works.
        """
        with self._cond:
            if self._started or self._stopped:
                raise RuntimeError("a CaptureThread can be started only once")
            self._started = True
        if not self._source.live:
            self._source.open()
        self._thread = threading.Thread(
            target=self._run, name=f"capture[{self._source.name}]", daemon=True
        )
        self._thread.start()
        log.info(
            "capture_started",
            source=self._source.name,
            live=self._source.live,
            queue_size=self._queue_size,
            drop_when_full=self._drop,
        )

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None once the stream ended (or `stop()` was called) and the queue
        is drained. Raises `CaptureTimeout` (a TimeoutError and a queue.Empty) when no frame
        came within `timeout` seconds, and re-raises a file's read error after its frames.
        """
        if not self._started:
            raise RuntimeError("CaptureThread.get() before start()")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._queue:
                    frame = self._queue.popleft()
                    self._delivered += 1
                    self._cond.notify_all()
                    return frame
                if self._error is not None:
                    error, self._error = self._error, None
                    if isinstance(error, SourceError):
                        raise error
                    raise SourceError(f"capture of {self._source.name} failed: {error}") from error
                if self._ended or self._stopped:
                    return None
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CaptureTimeout(f"no frame from {self._source.name} within {timeout:g} s")
                self._cond.wait(remaining)

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def stop(self) -> None:
        """Stop capturing and wait for the thread; safe to call more than once."""
        self._stop_event.set()
        with self._cond:
            already = self._stopped
            self._stopped = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout_s)
            if thread.is_alive():
                log.warning(
                    "capture_stop_timeout",
                    source=self._source.name,
                    waited_s=self._join_timeout_s,
                )
        if not already and self._started:
            log.info("capture_stopped", source=self._source.name, **self._stats_fields())

    # ---- capture thread ------------------------------------------------------------------------

    def _run(self) -> None:
        source = self._source
        try:
            if source.live and not self._open_with_retry(wait_first=False):
                return
            while not self._stop_event.is_set():
                try:
                    frame = source.read()
                except Exception as error:  # any read failure is handled here
                    if self._stop_event.is_set():
                        return  # a read cut short by shutdown is no loss
                    if not source.live:
                        self._fail(error)
                        return
                    if not self._recover(error):
                        return
                    continue
                if frame is None:
                    if not source.live:
                        log.info("capture_ended", source=source.name, **self._stats_fields())
                        return
                    if not self._recover(SourceError(f"{source.name} ended")):
                        return
                    continue
                self._delay = self._initial_delay
                if not self._put(frame):
                    return
        except BaseException as error:  # a bug: make it visible to the consumer, not a hang
            log.exception("capture_crashed", source=source.name)
            with self._cond:
                self._errors += 1
                self._error = error
        finally:
            try:
                source.close()
            except Exception:
                log.exception("capture_close_failed", source=source.name)
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _put(self, frame: Frame) -> bool:
        """Queue `frame`; False if stop() came first."""
        with self._cond:
            if self._drop:
                while len(self._queue) >= self._queue_size:
                    self._queue.popleft()
                    self._dropped += 1
            else:
                while len(self._queue) >= self._queue_size and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return False
            self._queue.append(frame)
            self._captured += 1
            self._cond.notify_all()
            return True

    def _fail(self, error: BaseException) -> None:
        log.error("capture_read_failed", source=self._source.name, error=str(error))
        with self._cond:
            self._errors += 1
            self._error = error

    def _recover(self, error: BaseException) -> bool:
        """Close the lost live source and reopen it; False if stop() came first."""
        with self._cond:
            self._errors += 1
            captured = self._captured
        log.warning(
            "capture_source_lost", source=self._source.name, error=str(error), captured=captured
        )
        try:
            self._source.close()
        except Exception as close_error:
            log.warning("capture_close_failed", source=self._source.name, error=str(close_error))
        lost_at = time.monotonic()
        attempts = self._open_with_retry(wait_first=True)
        if not attempts:
            return False
        with self._cond:
            self._reconnects += 1
            reconnects = self._reconnects
        log.info(
            "capture_reconnected",
            source=self._source.name,
            attempts=attempts,
            reconnects=reconnects,
            downtime_s=round(time.monotonic() - lost_at, 3),
        )
        return True

    def _open_with_retry(self, *, wait_first: bool) -> int:
        """Open the source, waiting with exponential backoff before each retry (and before the
        first attempt when `wait_first`). The number of attempts it took; 0 if stop() came
        first. Logs every failed attempt with its number.
        """
        attempt = 0
        while True:
            if wait_first or attempt > 0:
                delay = self._delay
                self._delay = min(self._delay * 2, self._max_delay)
                if not self._wait(delay):
                    return 0
            attempt += 1
            try:
                self._source.open()
            except Exception as error:  # a bad open is retried, never fatal
                with self._cond:
                    self._errors += 1
                log.warning(
                    "capture_open_failed",
                    source=self._source.name,
                    attempt=attempt,
                    error=str(error),
                    retry_in_s=self._delay,
                )
                continue
            if attempt > 1 and not wait_first:
                log.info("capture_opened", source=self._source.name, attempts=attempt)
            return attempt

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; False if stop() was called (the default wait ends at once then)."""
        if self._stop_event.is_set():
            return False
        if self._sleep is None:
            return not self._stop_event.wait(seconds)
        self._sleep(seconds)
        return not self._stop_event.is_set()

    def _stats_fields(self) -> dict[str, int]:
        stats = self.stats
        return {
            "captured": stats.captured,
            "dropped": stats.dropped,
            "reconnects": stats.reconnects,
            "errors": stats.errors,
            "delivered": stats.delivered,
        }
