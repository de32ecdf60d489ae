"""Device authentication: `X-API-Key: ssk_...` (or `Authorization: Bearer ssk_...`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy import select

from cloud_api.db.models import Device, Store
from cloud_api.security import parse_prefix, verify_api_key
from cloud_api.services.context import Caller, Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def caller(
    svc: ServicesDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "a device API key is required (X-API-Key header)")
    prefix = parse_prefix(key)
    if prefix is None:
        raise HTTPException(401, "malformed API key")
    with svc.sessions() as session:
        row = session.execute(
            select(Device, Store.region_id)
            .join(Store, Store.id == Device.store_id)
            .where(Device.key_prefix == prefix)
        ).first()
    if row is None:
        raise HTTPException(401, "unknown API key")
    device, region_id = row
    if device.revoked_at is not None or not verify_api_key(key, device.key_prefix, device.key_hash):
        raise HTTPException(401, "unknown or revoked API key")
    return Caller(
        device_id=device.id, device_kind=device.kind, store_id=device.store_id, region_id=region_id
    )


CallerDep = Annotated[Caller, Depends(caller)]
