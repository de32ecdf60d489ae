"""A small fault-injecting HTTP proxy for tests: put it between a client and a real server.

    with FaultProxy(upstream_url) as proxy:
        client_base_url = proxy.url
        proxy.set_mode(Mode.ERROR)          # 500 for everything, nothing forwarded
        proxy.set_mode(Mode.SLOW, 1.5)      # wait 1.5 s, then forward (the client gave up)
        proxy.set_mode(Mode.SLOW_AFTER, 1)  # forward at once, hold the answer for 1 s
        proxy.set_mode(Mode.DROP)           # close the connection without an answer
        proxy.set_mode(Mode.PASS)

`proxy.counts` says how many requests each mode has handled, how many were forwarded, and
how many answers are being held right now (`held`): a request whose effect the server has
already committed while its client still waits for the answer.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

__all__ = ["FaultProxy", "Mode"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class Mode(StrEnum):
    PASS = "pass"
    ERROR = "error"  # answer 500 without forwarding
    SLOW = "slow"  # sleep delay_s, then forward and answer
    SLOW_AFTER = "slow_after"  # forward at once, then hold the answer for delay_s
    DROP = "drop"  # close the connection without answering (nothing forwarded)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        mode, delay_s = proxy.begin()
        try:
            if mode is Mode.ERROR:
                self._answer(500, b'{"error":"injected","detail":"fault proxy: 500"}')
            elif mode is Mode.DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                if mode is Mode.SLOW:
                    proxy.pause(delay_s)
                status, content = self._forward(body)
                if mode is Mode.SLOW_AFTER:
                    with proxy.holding():
                        proxy.pause(delay_s)
                self._answer(status, content)
        except OSError:  # the client gave up (timeout) or went away (killed)
            self.close_connection = True
        finally:
            proxy.end()

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            response = proxy.client.request(
                self.command, proxy.upstream + self.path, content=body, headers=headers
            )
        except httpx.HTTPError as error:
            return 502, f'{{"error":"bad_gateway","detail":"{type(error).__name__}"}}'.encode()
        proxy.count("forwarded")
        return response.status_code, response.content

    def _answer(self, status: int, content: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        self.wfile.flush()


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 with switchable faults (see the module docstring)."""

    def __init__(self, upstream: str, *, mode: Mode = Mode.PASS, delay_s: float = 1.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.client = httpx.Client(timeout=60.0)
        self._lock = threading.Lock()
        self._mode = mode
        self._delay_s = delay_s
        self._counts: Counter[str] = Counter()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def set_mode(self, mode: Mode, delay_s: float | None = None) -> None:
        with self._lock:
            self._mode = mode
            if delay_s is not None:
                self._delay_s = delay_s

    @property
    def counts(self) -> Counter[str]:
        """requests per mode, `forwarded`, `in_flight` and `held` (now), `handled`."""
        with self._lock:
            return Counter(self._counts)

    # --- for the handler ---------------------------------------------------------------

    def begin(self) -> tuple[Mode, float]:
        with self._lock:
            self._counts[self._mode.value] += 1
            self._counts["in_flight"] += 1
            return self._mode, self._delay_s

    def end(self) -> None:
        with self._lock:
            self._counts["in_flight"] -= 1
            self._counts["handled"] += 1

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def holding(self) -> _Holding:
        return _Holding(self)

    def pause(self, seconds: float) -> None:
        self._closing.wait(seconds)  # returns at once when the proxy closes

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.client.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Holding:
    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy

    def __enter__(self) -> None:
        self._proxy.count("held")

    def __exit__(self, *_: object) -> None:
        with self._proxy._lock:
            self._proxy._counts["held"] -= 1
