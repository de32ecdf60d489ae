"""Run blocking work off the GUI thread and get the result back on it.

`run_in_thread(fn, on_done, on_error)` runs `fn()` on Qt's global thread pool; `on_done(result)`
or `on_error(exception)` is then called on the GUI thread (a queued signal), so callbacks may
touch widgets. Used for everything that may wait: opening a camera, HTTP calls, file I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = structlog.get_logger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as error:  # handed to the GUI, never lost
            log.warning("worker_failed", error=str(error), kind=type(error).__name__)
            self._relay.failed.emit(error)
        else:
            self._relay.done.emit(result)


_live: set[_Relay] = set()  # relays stay alive until their job has reported


def run_in_thread(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_error: Callable[[Exception], None],
) -> None:
    relay = _Relay()  # created on the calling (GUI) thread: its signals are queued to it
    _live.add(relay)

    def done(result: Any) -> None:
        _live.discard(relay)
        on_done(result)

    def failed(error: Any) -> None:
        _live.discard(relay)
        on_error(error)

    relay.done.connect(done)
    relay.failed.connect(failed)
    QThreadPool.globalInstance().start(_Job(fn, relay))
