"""The calling device, as the device itself may see it."""

from __future__ import annotations

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


def key_active(session: Session, device_id: int) -> bool:
    """Whether the device still exists and its key has not been revoked.

    Authentication checks the key once per request; a request that outlives that check (an
    alert stream) asks again with this, so `admin revoke-device` ends it too.
    """
    revoked = session.execute(select(Device.revoked_at).where(Device.id == device_id)).first()
    return revoked is not None and revoked[0] is None
