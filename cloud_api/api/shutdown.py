"""Graceful shutdown of a `serve` process: what happens between SIGTERM and exit.

On SIGTERM (or SIGINT) uvicorn stops accepting connections at once (a load balancer's next
attempt is refused and goes to another process), lets the requests in flight finish, and then
runs the application's shutdown; whatever still runs after `CloudSettings.shutdown_grace_s`
is cancelled (uvicorn's `timeout_graceful_shutdown`).

An event stream (`GET /v1/stores/{id}/alerts`) never finishes by itself, so it would hold every
shutdown for the whole grace period. `EndStreamsOnShutdown` tells each open event stream that
its client has gone (`http.disconnect`, which the stream checks between events) as soon as the
signal arrives: the stream ends, and the client reconnects (behind a load balancer, to another
process) and resumes after its Last-Event-ID. Ordinary requests are left alone: their bodies
are read and their answers sent as usual.

The signal is learnt by chaining onto the handler uvicorn installs (uvicorn stays in charge of
the shutdown), when the application's lifespan starts on the main thread; elsewhere (a server
run in a thread, as the tests do) there is no signal to watch and streams end as before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
EVENT_STREAM = b"text/event-stream"


class EndStreamsOnShutdown:
    """ASGI middleware (the outermost): open event streams end when the process is told to
    stop (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._announced = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self._watch_signals()
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streaming = False

        async def send_noting_streams(message: Message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                streaming = _is_event_stream(message)
            await send(message)

        async def receive_or_gone() -> Message:
            if streaming and self.stopping.is_set():
                self._announce()
                return {"type": "http.disconnect"}
            return await receive()

        await self.app(scope, receive_or_gone, send_noting_streams)

    def _announce(self) -> None:
        if not self._announced:  # (not from the signal handler: logging there could deadlock)
            self._announced = True
            log.info("event_streams_ending", reason="shutdown")

    def _watch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in SHUTDOWN_SIGNALS:
            previous = signal.getsignal(number)
            signal.signal(number, self._chained(previous))

    def _chained(self, previous: object) -> Callable[[int, FrameType | None], None]:
        def handler(number: int, frame: FrameType | None) -> None:
            self.stopping.set()
            if callable(previous):
                previous(number, frame)
            elif previous == signal.SIG_DFL:  # nobody else handles it: do what it would
                signal.signal(number, signal.SIG_DFL)
                signal.raise_signal(number)

        return handler


def _is_event_stream(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value).split(b";")[0].strip().lower() == EVENT_STREAM
    return False
