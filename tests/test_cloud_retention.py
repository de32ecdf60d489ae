"""Anonymous data expires; members (who consented) stay."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from cloud_api import admin
from cloud_api.api.app import start_services
from cloud_api.db.models import Customer, CustomerDeletion, FaceSample, utcnow
from cloud_api.services.recognizer import to_bytes
from cloud_api.services.retention import purge_expired
from cloud_api.settings import CloudSettings
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)


def test_unseen_anonymous_customers_expire_members_stay(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = CloudSettings(
        database_url=migrated_url,
        index_dir=tmp_path / "index",
        anonymous_retention_days=30,
        estimate_demographics=False,
        auto_migrate=False,
    )
    services = start_services(settings)
    try:
        old = utcnow() - timedelta(days=31)
        rng = np.random.default_rng(0)
        with services.sessions() as session, session.begin():
            admin.create_region(session, "East")
            store = admin.create_store(session, "East", "E001", "East One")
            people = {
                "stale": Customer(last_seen_at=old),
                "recent": Customer(last_seen_at=utcnow()),
                "member": Customer(last_seen_at=old, vip_number="V1", name="M", consent_at=old),
            }
            for customer in people.values():
                customer.region_id = store.region_id
                customer.first_store_id = store.id
                customer.visit_count = 1
                customer.lifetime_spend = Decimal(1)
                session.add(customer)
            session.flush()
            for customer in people.values():
                vector = rng.normal(size=128).astype(np.float32)
                session.add(
                    FaceSample(
                        customer_id=customer.id,
                        region_id=store.region_id,
                        store_id=store.id,
                        gender="unknown",
                        age_band=-1,
                        descriptor=to_bytes(vector / np.linalg.norm(vector)),
                        quality=0.9,
                    )
                )
            ids = {name: c.id for name, c in people.items()}
        services.recognizer.sync()
        assert services.recognizer.engine.stats()["samples"] == 3

        assert purge_expired(services) == 1

        with services.sessions() as session:
            remaining = set(session.scalars(select(Customer.id)).all())
            samples = session.scalar(select(func.count()).select_from(FaceSample))
            tombstones = session.scalars(select(CustomerDeletion.customer_id)).all()
        assert remaining == {ids["recent"], ids["member"]}
        assert samples == 2
        assert list(tombstones) == [ids["stale"]]
    finally:
        services.recognizer.close()
