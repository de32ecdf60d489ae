"""The store server's loop: its changed days' aggregates to head office, nothing else.

Each round brings the report rollups up to date (which queues every store-day they changed,
`cloud_api.upstream.outbox`), then sends the queued days, oldest first, `MAX_UPSTREAM_DAYS`
per request, as `PUT /v1/upstream/days` with the store's `store_server` key. A day leaves the
queue only when head office has accepted it, and head office replaces the day's rows with
what it gets, so a request repeated after a lost answer counts once. A store offline for days
keeps queueing and catches up when head office answers again; a failure ends the round and
is retried by the caller (`_Periodic`: logged once, growing pauses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import Store
from cloud_api.reports import rollups
from cloud_api.settings import CloudSettings
from cloud_api.upstream.days import read_day
from cloud_api.upstream.outbox import acknowledge, mark_pending, next_batch, pending_count
from contract import MAX_UPSTREAM_DAYS, ErrorBody, UpstreamAck, UpstreamPush

log = structlog.get_logger(__name__)

PATH = "/v1/upstream/days"
USER_AGENT = "storesight-store-server"
#: connect quickly or give up (the next round retries); a push of 7 days is small
TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)


def _client(settings: CloudSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    """The store server's one HTTP client: head office's URL, the store's key (never
    logged), explicit timeouts."""
    assert settings.upstream_url and settings.upstream_key is not None
    return httpx.Client(
        base_url=settings.upstream_url.strip().rstrip("/"),
        headers={
            "X-API-Key": settings.upstream_key.get_secret_value(),
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
        },
        timeout=TIMEOUT,
        transport=transport,
    )


def _refusal(response: httpx.Response) -> str:
    """Head office's error answer in one line (its ErrorBody, or the status alone)."""
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValueError:
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code} {body.error}: {body.detail[:300]}"


class UpstreamRefused(RuntimeError):
    """Head office answered a push with an error (the days stay queued)."""


@dataclass(frozen=True)
class PushRound:
    days_sent: int
    requests: int


def store_id_of(sessions: sessionmaker[Session], code: str) -> int:
    """The store server's own store, which must be in its database."""
    with sessions() as session:
        found = session.scalar(select(Store.id).where(Store.code == code))
    if found is None:
        raise ValueError(
            f"store_code {code!r} is not in this database: create it first "
            "(storesight-cloud admin create-region / create-store)"
        )
    return int(found)


class UpstreamPusher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: CloudSettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.mode == "store" and settings.store_code
        self._sessions = sessions
        self._settings = settings
        self._transport = transport
        self.store_id = store_id_of(sessions, settings.store_code)

    def queue_everything(self) -> int:
        """Queue every day the store has rollups for (at start: whatever changed while the
        server was down, or was loaded outside it, reaches head office). How many days."""
        rollups.ensure_fresh(self._sessions)
        with self._sessions() as session, session.begin():
            days = rollups.stored_days(session, self.store_id)
            mark_pending(session, days)
        return len(days)

    def push_once(self) -> PushRound:
        """Refresh the rollups, then send every queued day (raises on the first failure)."""
        rollups.ensure_fresh(self._sessions)
        settings = self._settings
        if not settings.upstream_url or settings.upstream_key is None:
            return PushRound(0, 0)
        sent = requests = 0
        with self._sessions() as session:
            # what is queued now, and one request more for days changed meanwhile; the rest
            # waits for the next round (a busy day re-queued at every refresh ends the round)
            most = math.ceil(pending_count(session, self.store_id) / MAX_UPSTREAM_DAYS) + 1
        with _client(settings, self._transport) as client:
            while requests < most:
                with self._sessions() as session:
                    batch = next_batch(session, self.store_id, MAX_UPSTREAM_DAYS)
                    if not batch:
                        break
                    push = UpstreamPush(days=[read_day(session, s, d) for s, d, _ in batch])
                try:
                    response = client.put(PATH, content=push.model_dump_json())
                except httpx.HTTPError as error:
                    reason = f"head office unreachable: {type(error).__name__}"
                    raise UpstreamRefused(reason) from error
                requests += 1
                if response.status_code != 200:
                    raise UpstreamRefused(f"head office refused the days: {_refusal(response)}")
                ack = UpstreamAck.model_validate_json(response.content)
                accepted = set(ack.days)
                with self._sessions() as session, session.begin():
                    acknowledge(session, [b for b in batch if b[1] in accepted])
                sent += len(accepted)
        if sent:
            log.info("upstream_days_sent", days=sent, requests=requests)
        return PushRound(sent, requests)
