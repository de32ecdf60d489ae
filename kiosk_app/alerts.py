"""The store's VIP-arrival alerts, followed from the cloud's server-sent-events endpoint.

`AlertStream` keeps one `GET {cloud_url}/v1/stores/{store_id}/alerts` open in a daemon thread,
hands every `vip_arrival` event to `on_arrival` as a `contract.VipArrival`, and reports its
state ("connecting", "connected", "offline", "unauthorised", "error", "stopped") to
`on_status`. It reconnects by itself (`cloud_transport.Backoff`: 0.5 s doubling up to 30 s,
jittered, at least what a Retry-After asks; 30 s after a refused key) and sends
`Last-Event-ID` on every reconnection, so an alert raised while the connection was down is
delivered once it is back, and never twice. Both callbacks run on the stream's thread: a GUI
must hand them over to its own thread (the staff window does, with a queued Qt signal).

`SseParser` is the event-stream parser alone (the WHATWG "server-sent events" rules), with no
I/O, so it can be tested line by line.

This module has no Qt dependency.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import httpx
import structlog
from pydantic import ValidationError

from contract import DeviceInfo, VipArrival
from kiosk_app import cloud_transport
from storesight_common.validation import location

log = structlog.get_logger(__name__)

#: The server sends a keep-alive comment every 15 s; silence for longer means a dead link.
DEFAULT_READ_TIMEOUT_S: Final = 25.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
BACKOFF_INITIAL_S: Final = 0.5
BACKOFF_MAX_S: Final = 30.0
#: A refused key (401/403) or another client error is not cured by hammering the server.
SLOW_RETRY_S: Final = 30.0
#: A connection that stayed up this long counts as healthy: the backoff starts again small.
HEALTHY_AFTER_S: Final = 5.0

ArrivalCallback = Callable[[VipArrival], None]
StatusCallback = Callable[[str, str], None]


# --- the event-stream format ----------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its type, its data (lines joined by "\\n") and the last event id."""

    event: str
    data: str
    id: str | None


class SseParser:
    """Server-sent events, parsed as the WHATWG HTML standard says (section 9.2.6).

    Feed it lines without their terminators (`feed_line`, as `httpx.Response.iter_lines`
    gives them) or raw text in any chunking and with any of CRLF, LF or CR line ends (`feed`).
    A blank line dispatches the event being built; an event without data is not dispatched.
    `last_event_id` is what a client sends back as `Last-Event-ID` when it reconnects: it is
    updated when an event is dispatched, so a half-received event does not count.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._id_buffer = last_event_id
        self._event = ""
        self._data: list[str] = []
        self._pending = ""  # text after the last line end seen by `feed`
        self._cr_at_end = False  # the last chunk ended with CR: a following LF belongs to it
        self._first_line = True

    def feed_line(self, line: str) -> SseEvent | None:
        """Process one line (terminator optional); return the event a blank line dispatches."""
        if line.endswith("\r\n"):
            line = line[:-2]
        elif line.endswith(("\n", "\r")):
            line = line[:-1]
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")  # a byte-order mark may start the stream
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (the server's "connected" and keep-alive)
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        # any other field is ignored, as the standard says
        return None

    def feed(self, text: str) -> list[SseEvent]:
        """Process a chunk of the stream; return the events it completes."""
        if self._cr_at_end and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split between two chunks
        self._cr_at_end = text.endswith("\r")
        events: list[SseEvent] = []
        buffer = self._pending + text
        lines = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop()  # the unterminated rest (often "")
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_lines(self, lines: Iterable[str]) -> Iterator[SseEvent]:
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                yield event

    def _dispatch(self) -> SseEvent | None:
        self.last_event_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event=event or "message", data="\n".join(data), id=self.last_event_id)


# --- the client -----------------------------------------------------------------------------


class _Refused(Exception):
    """The server will not serve this key or store: retry slowly, not with backoff."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


def _describe(response: httpx.Response) -> str:
    """A short reason from an error answer: "HTTP status: the ErrorBody's detail"."""
    return str(cloud_transport.error_from_response(response))


class AlertStream:
    """Follow a store's VIP-arrival alerts in a daemon thread (see the module docstring).

    `store_id` None: the store is learnt from `GET /v1/device` first (the key's own store).
    `last_event_id`: resume after this event (None: from the alerts raised after connecting).
    `transport`: an httpx transport for tests; the real network otherwise.
    """

    def __init__(
        self,
        cloud_url: str,
        api_key: str,
        store_id: int | None,
        on_arrival: ArrivalCallback,
        on_status: StatusCallback | None = None,
        *,
        last_event_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        slow_retry_s: float = SLOW_RETRY_S,
    ) -> None:
        self.cloud_url = cloud_url.rstrip("/")
        self._api_key = api_key
        self._store_id = store_id
        self._store_name = ""
        self._on_arrival = on_arrival
        self._on_status = on_status
        self._last_event_id = last_event_id
        self._transport = transport
        self._timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=10.0, pool=10.0
        )
        self._backoff = cloud_transport.Backoff(backoff_initial_s, backoff_max_s)
        self._slow_retry_s = slow_retry_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self._state = "stopped"
        self._detail = ""

    # --- public -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def detail(self) -> str:
        return self._detail

    @property
    def store_id(self) -> int | None:
        return self._store_id

    @property
    def store_name(self) -> str:
        return self._store_name

    @property
    def last_event_id(self) -> str | None:
        """The id of the last alert handled: where a reconnection (or a restart) resumes."""
        return self._last_event_id

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start following (again, after `stop`: it resumes after `last_event_id`)."""
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="alert-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop and wait up to `timeout_s` for the thread; True when it has ended."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            _interrupt(response)
        thread = self._thread
        if thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout_s)
        ended = not thread.is_alive()
        if not ended:
            log.warning("alert_stream_stop_timeout", timeout_s=timeout_s)
        return ended

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # in a row; a healthy connection starts the backoff again small
        log.info("alert_stream_started", cloud_url=self.cloud_url, store=self._store_id)
        try:
            with cloud_transport.make_client(
                self.cloud_url,
                self._api_key,
                timeout=self._timeout,
                transport=self._transport,
                headers={"Accept": "text/event-stream"},
            ) as client:
                while not self._stopping.is_set():
                    slow = False
                    retry_after: float | None = None
                    try:
                        if self._store_id is None:
                            self._discover(client)
                        if self._follow(client):
                            failures = 0
                        if not self._stopping.is_set():
                            self._status("offline", "the alert stream ended; reconnecting")
                    except _Refused as refused:
                        self._status(refused.state, refused.detail)
                        slow = True
                    except (httpx.HTTPError, OSError) as error:
                        if self._stopping.is_set():
                            break
                        if isinstance(error, httpx.HTTPStatusError):
                            retry_after = cloud_transport.retry_after_s(error.response, time.time())
                        self._status("offline", _network_reason(error))
                    except Exception as error:  # the thread must live on
                        log.exception("alert_stream_failed")
                        self._status("error", f"{type(error).__name__}: {error}")
                    if slow:
                        delay = self._slow_retry_s
                    else:
                        failures += 1
                        delay = self._backoff.delay_s(failures, retry_after)
                    log.debug("alert_stream_retry_in", delay_s=delay)
                    self._stopping.wait(delay)
        finally:
            with self._lock:
                self._response = None
            self._status("stopped", "")
            log.info("alert_stream_stopped", last_event_id=self._last_event_id)

    def _discover(self, client: httpx.Client) -> None:
        self._status("connecting", f"asking {self.cloud_url} which store this key belongs to")
        response = client.get("/v1/device")
        self._check(response)
        info = DeviceInfo.model_validate_json(response.content)
        self._store_id, self._store_name = info.store_id, info.store_name
        log.info("alert_stream_store", store=info.store_id, store_name=info.store_name)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            raise _Refused("unauthorised", _describe(response))
        if cloud_transport.is_transient(status):
            raise httpx.HTTPStatusError(
                _describe(response), request=response.request, response=response
            )
        if status != 200:
            raise _Refused("error", _describe(response))

    def _follow(self, client: httpx.Client) -> bool:
        """One connection, until it ends; True when it was healthy (lasted, or delivered)."""
        headers = {"Cache-Control": "no-cache"}
        if self._last_event_id is not None:
            headers["Last-Event-ID"] = self._last_event_id
        path = f"/v1/stores/{self._store_id}/alerts"
        self._status("connecting", f"{self.cloud_url}{path}")
        with client.stream("GET", path, headers=headers) as response:
            with self._lock:
                self._response = response
            try:
                if self._stopping.is_set():
                    return False
                self._check(response)
                opened = time.monotonic()
                delivered = False
                self._status("connected", f"following store {self._store_id}'s alerts")
                log.info("alert_stream_connected", store=self._store_id, resume=self._last_event_id)
                parser = SseParser(self._last_event_id)
                for line in response.iter_lines():
                    if self._stopping.is_set():
                        break
                    event = parser.feed_line(line)
                    if event is not None:
                        delivered = self._handle(event) or delivered
                    elif parser.last_event_id is not None:
                        # an id-only block ("id: N" and a blank line) moves the resume point
                        self._last_event_id = parser.last_event_id
                return delivered or time.monotonic() - opened >= HEALTHY_AFTER_S
            finally:
                with self._lock:
                    self._response = None

    def _handle(self, event: SseEvent) -> bool:
        """Deliver one event; True when it was a new alert."""
        if event.event != "vip_arrival":
            log.debug("alert_stream_event_ignored", event_type=event.event, id=event.id)
            return False
        if event.id is not None and _not_after(event.id, self._last_event_id):
            log.info("alert_stream_duplicate_skipped", id=event.id, last=self._last_event_id)
            return False
        try:
            arrival = VipArrival.model_validate_json(event.data)
        except ValidationError as error:
            first = error.errors()[0]
            log.warning(
                "alert_stream_bad_event",
                id=event.id,
                errors=error.error_count(),
                first_error=first["msg"],
                field=location(first["loc"]),
                data=event.data[:200],
            )
            if event.id is not None:
                self._last_event_id = event.id  # never ask for it again
            return False
        self._last_event_id = event.id if event.id is not None else str(arrival.event_id)
        log.info(
            "vip_arrival_received",
            id=arrival.event_id,
            store=arrival.store_id,
            customer=arrival.customer_id,
            vip_number=arrival.vip_number,
        )
        try:
            self._on_arrival(arrival)
        except Exception:  # a failing receiver must not end the stream
            log.exception("alert_stream_callback_failed", id=arrival.event_id)
        return True

    def _status(self, state: str, detail: str) -> None:
        if (state, detail) == (self._state, self._detail):
            return
        self._state, self._detail = state, detail
        log.info("alert_stream_status", state=state, detail=detail)
        if self._on_status is None:
            return
        try:
            self._on_status(state, detail)
        except Exception:  # a failing receiver must not end the stream
            log.exception("alert_stream_status_callback_failed", state=state)


def _not_after(event_id: str, last: str | None) -> bool:
    """True when numeric `event_id` is not newer than `last` (an alert already handled)."""
    if last is None or not (event_id.isdigit() and last.isdigit()):
        return False
    return int(event_id) <= int(last)


def _network_reason(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"the cloud answered {error}"
    if isinstance(error, httpx.ConnectError):
        return f"cannot reach the cloud: {error}"
    if isinstance(error, httpx.ReadTimeout):
        return "no data or keep-alive from the cloud: the connection is dead"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _interrupt(response: httpx.Response) -> None:
    """Wake a thread blocked reading `response` (called from another thread).

    Closing a socket does not wake a `recv` blocked on it in another thread on every platform;
    shutting it down does. Without access to the socket (a test transport), close the response.
    """
    stream = response.extensions.get("network_stream")
    sock = None
    if stream is not None:
        with contextlib.suppress(Exception):
            sock = stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):
        response.close()
