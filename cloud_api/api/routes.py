"""Version 1 of the HTTP API. Handlers are thin: parse, authorise, call a service."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cloud_api.api.alert_stream import MAX_ID, alert_stream, resume_point
from cloud_api.api.auth import AnyDeviceDep, EntranceDep, ServicesDep, StoreServerDep, TillDep
from cloud_api.services import (
    alerts,
    checkout,
    customers,
    decisions,
    devices,
    sightings,
    timestamps,
)
from cloud_api.upstream import intake
from contract import (
    CheckoutRequest,
    CheckoutResponse,
    CustomerHistory,
    CustomerOut,
    DecisionAnswer,
    DeviceInfo,
    ErrorBody,
    MembershipRequest,
    SightingRequest,
    SightingResponse,
    UpstreamAck,
    UpstreamPush,
)

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}
router = APIRouter(prefix="/v1", responses=ERRORS)
CustomerId = Annotated[int, FastApiPath(ge=1, le=MAX_ID)]
StoreId = Annotated[int, FastApiPath(ge=1, le=MAX_ID)]


@router.get("/device", response_model=DeviceInfo, tags=["devices"])
def get_device(who: AnyDeviceDep, svc: ServicesDep) -> DeviceInfo:
    """The calling device and its store: how a kiosk learns where its key belongs."""
    return devices.describe(svc, who)


@router.post("/checkouts", response_model=CheckoutResponse, tags=["till"])
def post_checkout(body: CheckoutRequest, who: TillDep, svc: ServicesDep) -> CheckoutResponse:
    """Bind the customer at the counter to the scanned receipt; answer with the VIP card."""
    timestamps.check_recent(svc.settings, "captured_at", body.captured_at)
    timestamps.check_recent(svc.settings, "receipt.scanned_at", body.receipt.scanned_at)
    return checkout.checkout(svc, who, body)


DecisionId = Annotated[int, FastApiPath(ge=1, le=MAX_ID, description="the card's decision_id")]


@router.post("/decisions/{decision_id}/confirm", response_model=DecisionAnswer, tags=["till"])
def post_confirm(decision_id: DecisionId, who: TillDep, svc: ServicesDep) -> DecisionAnswer:
    """The cashier confirmed a "possible member": link the visit, answer with their card."""
    return decisions.confirm(svc, who, decision_id)


@router.post("/decisions/{decision_id}/reject", response_model=DecisionAnswer, tags=["till"])
def post_reject(decision_id: DecisionId, who: TillDep, svc: ServicesDep) -> DecisionAnswer:
    """The customer said "not me": never that member for this visit; answer anonymously."""
    return decisions.reject(svc, who, decision_id)


@router.post("/sightings", response_model=SightingResponse, tags=["entrance"])
def post_sighting(body: SightingRequest, who: EntranceDep, svc: ServicesDep) -> SightingResponse:
    """A face at the entrance: count the visitor, recognise, raise a VIP-arrival alert."""
    timestamps.check_recent(svc.settings, "captured_at", body.captured_at)
    return sightings.sighting(svc, who, body)


@router.put("/upstream/days", response_model=UpstreamAck, tags=["in-store"])
def put_upstream_days(body: UpstreamPush, who: StoreServerDep, svc: ServicesDep) -> UpstreamAck:
    """An in-store store's server sends its days' aggregates (no face, customer or receipt):
    each replaces what head office holds for that store-day."""
    return intake.accept(svc, who, body)


@router.get("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
def get_customer(customer_id: CustomerId, who: TillDep, svc: ServicesDep) -> CustomerOut:
    return customers.get_customer(svc, who, customer_id)


@router.get("/customers/{customer_id}/history", response_model=CustomerHistory, tags=["customers"])
def get_history(customer_id: CustomerId, who: TillDep, svc: ServicesDep) -> CustomerHistory:
    """The customer's receipts in this store, newest first."""
    return customers.history(svc, who, customer_id)


@router.put("/customers/{customer_id}/membership", response_model=CustomerOut, tags=["customers"])
def put_membership(
    customer_id: CustomerId, body: MembershipRequest, who: TillDep, svc: ServicesDep
) -> CustomerOut:
    """Bind a VIP number and name; refused without the customer's consent."""
    return customers.bind_membership(svc, who, customer_id, body)


@router.delete(
    "/customers/{customer_id}/membership", response_model=CustomerOut, tags=["customers"]
)
def delete_membership(customer_id: CustomerId, who: TillDep, svc: ServicesDep) -> CustomerOut:
    """The customer withdrew their consent (opted out): membership ends, their arrival
    alerts and photos are deleted, and staff are never told of them again."""
    return customers.withdraw_membership(svc, who, customer_id)


@router.delete("/customers/{customer_id}", status_code=204, tags=["customers"])
def delete_customer(customer_id: CustomerId, who: TillDep, svc: ServicesDep) -> Response:
    """Delete the customer's faces, visits and personal fields; receipts stay, unlinked."""
    customers.delete_customer(svc, who, customer_id)
    return Response(status_code=204)


@router.get("/stores/{store_id}/alerts", tags=["staff"])
async def stream_alerts(
    store_id: StoreId,
    request: Request,
    who: AnyDeviceDep,
    svc: ServicesDep,
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Server-sent events: `vip_arrival` with a VipArrival body; resumes after Last-Event-ID.

    The stream follows its store through the process's alert hub (one database read for all
    of the process's streams, `cloud_api.services.alert_hub`); it ends, without anything
    raised after, when its key is revoked."""
    if store_id != who.store_id:
        raise HTTPException(403, "a device may only follow its own store's alerts")
    resumed = resume_point(last_event_id)
    after = resumed if resumed is not None else await run_in_threadpool(alerts.latest_alert_id, svc)

    async def render(batch: list[alerts.Alert]) -> list[tuple[int, str, str]]:
        return [
            (a.event_id, "vip_arrival", json.dumps(alerts.vip_arrival(a).model_dump(mode="json")))
            for a in batch
        ]

    return alert_stream(
        request,
        store_id=store_id,
        after=after,
        kinds=alerts.DEVICE_KINDS,
        render=render,
        device_id=who.device_id,
    )


# /healthz and /readyz: cloud_api.api.health
