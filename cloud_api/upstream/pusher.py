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

from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import Store
from cloud_api.reports import rollups
from cloud_api.settings import CloudSettings
from cloud_api.upstream.days import read_day
from cloud_api.upstream.outbox import acknowledge, mark_pending, next_batch
from contract import MAX_UPSTREAM_DAYS, UpstreamAck, UpstreamPush
from kiosk_app.cloud_transport import error_from_response, make_client

log = structlog.get_logger(__name__)

PATH = "/v1/upstream/days"
USER_AGENT = "storesight-store-server"


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
        with make_client(
            settings.upstream_url,
            settings.upstream_key.get_secret_value(),
            transport=self._transport,
            headers={"User-Agent": USER_AGENT},
        ) as client:
            while True:
                with self._sessions() as session:
                    batch = [
                        b for b in next_batch(session, MAX_UPSTREAM_DAYS) if b[0] == self.store_id
                    ]
                    if not batch:
                        break
                    push = UpstreamPush(days=[read_day(session, s, d) for s, d, _ in batch])
                try:
                    response = client.put(
                        PATH,
                        content=push.model_dump_json(),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError as error:
                    reason = f"head office unreachable: {type(error).__name__}"
                    raise UpstreamRefused(reason) from error
                requests += 1
                if response.status_code != 200:
                    refusal = error_from_response(response)
                    raise UpstreamRefused(f"head office refused the days: {refusal}")
                ack = UpstreamAck.model_validate_json(response.content)
                accepted = set(ack.days)
                with self._sessions() as session, session.begin():
                    acknowledge(session, [b for b in batch if b[1] in accepted])
                sent += len(accepted)
        if sent:
            log.info("upstream_days_sent", days=sent, requests=requests)
        return PushRound(sent, requests)
