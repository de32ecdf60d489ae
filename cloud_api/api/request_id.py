"""A request id on every log line of a request, and on its answer (`X-Request-ID`).

The caller's `X-Request-ID` is kept when it is sane (1-64 characters of letters, digits and
`-_.:`), so a till's id follows its request through the logs; otherwise one is made. It is
bound with structlog's contextvars for the request's lifetime (handlers run in a thread pool
with a copy of the context, so their lines carry it too).
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def request_id_from(value: str | None) -> str:
    """`value` when it is a sane request id, else a new one."""
    if value is not None and _SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI (works for streaming answers too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (
                v.decode("latin-1")
                for k, v in scope.get("headers", [])
                if k.lower() == b"x-request-id"
            ),
            None,
        )
        request_id = request_id_from(given)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
