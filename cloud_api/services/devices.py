"""The calling device, as the device itself may see it."""

from __future__ import annotations

from sqlalchemy import select

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
