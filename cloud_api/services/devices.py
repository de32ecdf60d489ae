"""The calling device, as the device itself may see it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db.models import Device, Store
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import NotFound
from contract import DeviceInfo


def describe(svc: Services, who: Caller) -> DeviceInfo:
    with svc.sessions() as session:
        row = session.execute(
            select(Device, Store)
            .join(Store, Store.id == Device.store_id)
            .where(Device.id == who.device_id)
        ).first()
    if row is None:  # revoked and deleted between authentication and now
        raise NotFound("device not found")
    device, store = row
    return DeviceInfo(
        device_id=device.id,
        name=device.name,
        kind="entrance" if device.kind == "entrance" else "till",
        store_id=store.id,
        store_code=store.code,
        store_name=store.name,
        region_id=store.region_id,
    )


def active_device_ids(session: Session, device_ids: Iterable[int]) -> set[int]:
    """Which of these devices still exist with a key that has not been revoked.

    Authentication checks the key once per request; a request that outlives that check (an
    alert stream) asks again with this, so `admin revoke-device` ends it too. One query for
    every stream of the process (the alert hub asks once per round).
    """
    wanted = sorted(set(device_ids))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Device.id).where(Device.id.in_(wanted), Device.revoked_at.is_(None))
        ).all()
    )
