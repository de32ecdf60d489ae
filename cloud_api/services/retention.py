"""Anonymous data expires: customers without membership unseen for the retention period are
deleted with their face samples (receipts stay, unlinked); a possible member's held shots go
after a day if the cashier never answered; staff alerts (arrivals with their face crops,
greetings) go after `staff_alert_retention_hours`."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select, update

from cloud_api.db.models import Customer, RecognitionDecision, utcnow
from cloud_api.services import alerts
from cloud_api.services.context import Services
from cloud_api.services.customers import purge

log = structlog.get_logger(__name__)

PENDING_SHOTS_TTL = timedelta(days=1)


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
    _expire_pending_shots(services)
    _expire_alerts(services)
    return total


def _expire_alerts(services: Services) -> None:
    cutoff = utcnow() - timedelta(hours=services.settings.staff_alert_retention_hours)
    with services.sessions() as session, session.begin():
        expired = alerts.expire(session, cutoff)
    if expired:
        log.info("staff_alerts_expired", count=expired)


def _expire_pending_shots(services: Services) -> None:
    """A possible member's shots wait for the cashier's answer for a day at most."""
    cutoff = utcnow() - PENDING_SHOTS_TTL
    with services.sessions() as session, session.begin():
        result = session.execute(
            update(RecognitionDecision)
            .where(
                RecognitionDecision.visit_descriptors.is_not(None),
                RecognitionDecision.created_at < cutoff,
            )
            .values(visit_descriptors=None, visit_qualities=None)
        )
        cleared = getattr(result, "rowcount", 0)
    if cleared:
        log.info("pending_visit_shots_expired", count=cleared)
