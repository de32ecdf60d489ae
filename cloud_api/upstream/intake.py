"""Head office's side: store servers' days, stored beside its own stores' rollups."""

from __future__ import annotations

import structlog

from cloud_api.db.models import Store
from cloud_api.reports import rollups
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import Conflict
from cloud_api.upstream.days import replace_day
from contract import UpstreamAck, UpstreamPush

log = structlog.get_logger(__name__)


def accept(services: Services, caller: Caller, push: UpstreamPush) -> UpstreamAck:
    """Replace the caller's store's rollups of each day pushed, all in one transaction.

    Only a store head office knows as in-store (`stores.mode = 'store'`) may send days: a
    cloud store's rollups are computed here from its receipts and would be overwritten."""
    with services.sessions() as session, session.begin():
        store = session.get(Store, caller.store_id)
        assert store is not None  # the caller's key belongs to it
        if store.mode != "store":
            raise Conflict(
                f"store {store.code} is in cloud mode here: set it to in-store mode "
                "(storesight-cloud admin set-store-mode) before its store server sends days"
            )
        for day in push.days:
            replace_day(session, store.id, day)
        # the region's and chain's buyers of those days are recomputed with them
        rollups.mark_dirty(session, [(store.id, d.day) for d in push.days])
        code = store.code
    log.info("upstream_days_accepted", store=caller.store_id, days=len(push.days))
    return UpstreamAck(store_code=code, days=[d.day for d in push.days])
