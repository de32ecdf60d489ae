"""Anonymous data expires: customers without membership unseen for the retention period are
deleted with their face samples (receipts stay, unlinked)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select

from cloud_api.db.models import Customer, utcnow
from cloud_api.services.context import Services
from cloud_api.services.customers import purge

log = structlog.get_logger(__name__)


def purge_expired(services: Services, batch: int = 1000) -> int:
    cutoff = utcnow() - timedelta(days=services.settings.anonymous_retention_days)
    total = 0
    while True:
        with services.sessions() as session, session.begin():
            ids = list(
                session.scalars(
                    select(Customer.id)
                    .where(Customer.vip_number.is_(None), Customer.last_seen_at < cutoff)
                    .limit(batch)
                ).all()
            )
            purge(session, ids)
        for customer_id in ids:
            services.recognizer.forget(customer_id)
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        log.info("anonymous_customers_expired", count=total, cutoff=cutoff.isoformat())
    return total
