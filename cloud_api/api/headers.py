"""Security headers on every answer, and whether a request came over HTTPS.

- `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and `Referrer-Policy:
  no-referrer` on every answer;
- `Cache-Control: no-store` on JSON and CSV answers (reports, customers, errors) unless the
  route chose its own (the dashboard's static files do);
- `Strict-Transport-Security` when the request came over HTTPS (see `is_https`).

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, so streamed answers (the
alerts stream) pass through untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_api.settings import CloudSettings

HSTS = "max-age=31536000; includeSubDomains"
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
NOT_STORED = ("application/json", "text/csv", "application/problem+json")


def is_https(scope: Scope, settings: CloudSettings) -> bool:
    """Whether the client reached us over HTTPS: `https_only` says so, or the request's scheme
    is https (TLS at uvicorn, or `X-Forwarded-Proto: https` from a proxy uvicorn trusts:
    FORWARDED_ALLOW_IPS, by default only 127.0.0.1)."""
    return settings.https_only or scope.get("scheme") in ("https", "wss")


def request_is_https(connection: HTTPConnection, settings: CloudSettings) -> bool:
    return is_https(connection.scope, settings)


class SecurityHeaders:
    """Adds the headers above to every HTTP answer of `app`."""

    def __init__(self, app: ASGIApp, settings: CloudSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = is_https(scope, self.settings)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                content_type = headers.get("content-type", "").split(";")[0].strip().lower()
                if content_type in NOT_STORED and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
