"""The local HTTP endpoint: ``POST /receipts`` on the loopback interface, for a POS on this PC.

`LocalReceiptServer` takes JSON (1 MB at most; the format is in `kiosk_app.receipts.parsing`)
and answers 202 ``{"accepted": "<number>"}``; 422 ``{"error": "<reason>"}`` for a bad receipt
(kept in the intake's dead letters); 413 for a body over the limit; 415 for a body that is not
``application/json``; 404/405 otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog

from kiosk_app.receipts.intake import ReceiptIntake, ReceiptRejected
from storesight_common.lifecycle import StartStop

__all__ = ["MAX_HTTP_BODY_BYTES", "LocalReceiptServer"]

log = structlog.get_logger(__name__)

MAX_HTTP_BODY_BYTES = 1024 * 1024


def _loopback_host(host: str) -> str:
    if host.strip().lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"LocalReceiptServer binds to the loopback interface only: give an address such "
            f"as 127.0.0.1 or ::1, not {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"LocalReceiptServer binds to the loopback interface only (127.0.0.1 or ::1); "
            f"{host!r} would let other machines on the network post receipts to this till"
        )
    return str(address)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    intake: ReceiptIntake
    max_body: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("receipt_server_connection_error", client=str(client_address))


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "StoreSightKiosk/1"
    timeout = 10.0  # per socket operation: a stalled client does not hold a thread forever

    def _app(self) -> _Server:
        assert isinstance(self.server, _Server)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("receipt_server_http", client=self.client_address[0], message=format % args)

    def _reply(self, status: HTTPStatus, body: dict[str, str], **headers: str) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _not_post(self) -> None:
        if self._path() == "/receipts":
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"}, Allow="POST")
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self._path()}"})

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_post

    def _drain(self, length: int, cap: int) -> None:
        """Read and drop a refused body, so the client sees our answer and not a reset."""
        if length > cap:
            self.close_connection = True
            return
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            self.close_connection = True

    def do_POST(self) -> None:
        if self._path() != "/receipts":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self._path()}"})
            return
        app = self._app()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "Content-Length is not a number"})
            return
        if length > app.max_body:
            self._drain(length, cap=8 * app.max_body)
            log.warning("receipt_server_too_large", bytes=length, limit=app.max_body)
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"body of {length} bytes is over the limit of {app.max_body}"},
            )
            return
        content_type = self.headers.get_content_type()
        if content_type != "application/json" and not content_type.endswith("+json"):
            self._drain(length, cap=app.max_body)
            self._reply(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": f"Content-Type must be application/json, not {content_type}"},
            )
            return
        try:
            raw = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return  # the client went away (or stalled past the timeout); nothing to answer
        if len(raw) != length:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body shorter than Content-Length"})
            return
        try:
            receipt = app.intake.accept_json(raw, "http")
        except ReceiptRejected as rejected:
            self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": rejected.reason})
            return
        except Exception:  # the handler failed; logged by the intake
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": "the receipt is valid but the kiosk could not take it; retry"},
            )
            return
        self._reply(HTTPStatus.ACCEPTED, {"accepted": receipt.number})


class LocalReceiptServer(StartStop):
    """``POST /receipts`` on loopback, for a POS on the same PC (stdlib server, daemon thread)."""

    def __init__(
        self,
        intake: ReceiptIntake,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = MAX_HTTP_BODY_BYTES,
    ) -> None:
        self.intake = intake
        self.host = _loopback_host(host)
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the port the server actually bound, once started)."""
        if self._server is None:
            raise RuntimeError("LocalReceiptServer.url is known once the server is started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> None:
        if self._server is not None:
            return
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host, self.port), _RequestHandler)
        server.intake = self.intake
        server.max_body = self.max_body_bytes
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="receipt-server",
            daemon=True,
        )
        self._thread.start()
        log.info("receipt_server_started", url=f"{self.url}/receipts")

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        log.info("receipt_server_stopped")
