"""Server-sent events of a store's alerts: the desktop staff window's and the staff app's.

Both follow their store through the process's alert hub (`cloud_api.services.alert_hub`: one
database read per round for every stream). A stream starts with a comment and its resume
point (`id:`), so a client cut off before its first event resumes from there (Last-Event-ID)
and misses nothing raised meanwhile; it sends a keep-alive comment when quiet, and ends
(without anything raised after) when its device key is revoked or its user session ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from fastapi import Request
from fastapi.responses import StreamingResponse

from cloud_api.db.session import error_line
from cloud_api.services.alert_hub import AlertHub
from cloud_api.services.alerts import Alert

log = structlog.get_logger(__name__)

HEARTBEAT_S = 15.0
#: how often a quiet stream looks whether its client left or the process is shutting down
#: (`cloud_api.api.shutdown` reports a shutdown as the client leaving): a draining process
#: ends its streams within this, not after the grace period
DISCONNECT_CHECK_S = 0.5
#: ids are 64-bit signed integers in every database; a larger one is a bad request, not a 500
#: (every path id is bounded by it: `cloud_api.api.routes`)
MAX_ID = 2**63 - 1

#: (SSE event name, JSON data) for each alert of a batch the client is to see, in order
Render = Callable[[list[Alert]], Awaitable[list[tuple[int, str, str]]]]


def resume_point(last_event_id: str | None) -> int | None:
    """The event id a client resumes after, or None (start from now) when Last-Event-ID is
    missing, not a plain decimal number, or beyond any id the database can hold."""
    if last_event_id is None:
        return None
    value = last_event_id.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        return None
    after = int(value)
    return after if after <= MAX_ID else None


def alert_stream(
    request: Request,
    *,
    store_id: int,
    after: int,
    kinds: frozenset[str],
    render: Render,
    device_id: int | None = None,
    session_id: int | None = None,
) -> StreamingResponse:
    """The store's alerts of `kinds` after `after`, as `render` words them.

    `render` gets each batch the hub hands over and answers (event id, event name, data) per
    event to send; an alert it leaves out is still counted as seen. When it fails (the
    database is down), the stream ends before that batch: the client reconnects with its
    Last-Event-ID and is sent the batch then."""
    hub: AlertHub = request.app.state.alert_hub
    revoked = (
        "the device key was revoked"
        if device_id is not None
        else "the session was signed out, revoked or expired"
    )

    async def events() -> AsyncIterator[str]:
        last = after
        yield ": connected\n\n"
        yield f"id: {last}\n\n"
        with hub.follow(
            store_id, after, kinds, device_id=device_id, session_id=session_id
        ) as follower:
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                batch = await follower.next(timeout=DISCONNECT_CHECK_S)
                if batch is None:
                    if follower.ending == "revoked":
                        yield f": {revoked}\n\n"
                    return
                try:
                    rendered = await render(batch)
                except Exception as error:  # the database, say: the client resumes later
                    log.warning(
                        "alert_stream_render_failed",
                        store=store_id,
                        error=type(error).__name__,
                        detail=error_line(error),
                    )
                    yield ": the server could not read these alerts; reconnect to resume\n\n"
                    return
                for event_id, name, data in rendered:
                    last = max(last, event_id)  # a late commit never moves it back
                    yield f"id: {last}\nevent: {name}\ndata: {data}\n\n"
                if batch:
                    last = max(last, max(a.event_id for a in batch))
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
