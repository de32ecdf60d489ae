"""Device authentication and the device-kind policy of every device endpoint.

A device authenticates with `X-API-Key: ssk_...` (or `Authorization: Bearer ssk_...`): no key,
a malformed, unknown or revoked key is 401. What each kind of device may then do is decided
here, once, by the dependency an endpoint declares (a kind it was not made for is 403):

| endpoint                                         | till | entrance |
|--------------------------------------------------|------|----------|
| `GET /v1/device`                                 | yes  | yes      |
| `POST /v1/checkouts`                             | yes  | no       |
| `POST /v1/decisions/{id}/confirm`, `/reject`     | yes  | no       |
| `POST /v1/sightings`                             | no   | yes      |
| `GET /v1/customers/{id}`, `/history`             | yes  | no       |
| `PUT`, `DELETE /v1/customers/{id}/membership`    | yes  | no       |
| `DELETE /v1/customers/{id}`                      | yes  | no       |
| `GET /v1/stores/{id}/alerts` (own store only)    | yes  | yes      |

A `store_server` key (an in-store store's server, at head office) may only
`PUT /v1/upstream/days`, which no till or entrance may call.

An entrance camera has nobody to show a customer to and no receipt to bind, so it only counts
visitors; the staff window follows its store's alerts with either kind of key. Which store's
and region's data a device may then see is the services' business (`cloud_api.services`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy import select

from cloud_api.db.models import Device, Store
from cloud_api.security import parse_prefix, verify_api_key
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import Forbidden

TILL = "till"
ENTRANCE = "entrance"
STORE_SERVER = "store_server"


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
            select(Device, Store.region_id, Store.mode)
            .join(Store, Store.id == Device.store_id)
            .where(Device.key_prefix == prefix)
        ).first()
    if row is None:
        raise HTTPException(401, "unknown API key")
    device, region_id, mode = row
    if device.revoked_at is not None or not verify_api_key(key, device.key_prefix, device.key_hash):
        raise HTTPException(401, "unknown or revoked API key")
    if mode == "store" and device.kind != STORE_SERVER and svc.settings.mode != "store":
        # at head office: an in-store store's faces and receipts stay with its store server
        # (a store server serves its own store whatever that store's row says)
        raise Forbidden(
            "this store is in in-store mode here: its tills and cameras talk to its store "
            "server, which sends this service aggregates only"
        )
    return Caller(
        device_id=device.id, device_kind=device.kind, store_id=device.store_id, region_id=region_id
    )


CallerDep = Annotated[Caller, Depends(caller)]


def require_kind(*kinds: str) -> Callable[[Caller], Caller]:
    """A dependency: the authenticated device, refused (403) unless it is one of `kinds`."""
    allowed = " and ".join(f"{k} devices" for k in kinds)

    def of_kind(who: CallerDep) -> Caller:
        if who.device_kind not in kinds:
            raise Forbidden(f"only {allowed} may do this (this key is a {who.device_kind}'s)")
        return who

    return of_kind


TillDep = Annotated[Caller, Depends(require_kind(TILL))]
EntranceDep = Annotated[Caller, Depends(require_kind(ENTRANCE))]
AnyDeviceDep = Annotated[Caller, Depends(require_kind(TILL, ENTRANCE))]
StoreServerDep = Annotated[Caller, Depends(require_kind(STORE_SERVER))]
