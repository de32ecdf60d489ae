"""The staff app's API (`/v1/staff/*`): a store's arrivals for its signed-in staff.

Signed in as for the dashboard (`cloud_api.api.user_auth`); only `store_staff` and
`store_manager` users, for their own store (`cloud_api.services.staff_arrivals`). Every
answer is `Cache-Control: no-store` (JSON by `cloud_api.api.headers`, the stream by
`cloud_api.api.alert_stream`): names and faces never stay in a browser's cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cloud_api.api.alert_stream import MAX_ID, alert_stream, resume_point
from cloud_api.api.auth import ServicesDep
from cloud_api.api.user_auth import MaybeSignedInDep, SignedIn, SignedInDep, UserDep
from cloud_api.db.models import Store
from cloud_api.services import alerts, staff_accounts, staff_arrivals
from cloud_api.services.alerts import Alert
from contract import (
    ArrivalCard,
    ErrorBody,
    NewStaffAccount,
    StaffAccount,
    StaffArrivals,
    StaffMe,
    StaffSession,
)

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix="/v1/staff", responses=ERRORS, tags=["staff app"])
#: a store's staff accounts, managed by its manager or an admin
accounts = APIRouter(prefix="/v1/stores/{store_id}/staff", responses=ERRORS, tags=["staff app"])
StoreId = Annotated[int, FastApiPath(ge=1, le=MAX_ID)]
UserId = Annotated[int, FastApiPath(ge=1, le=MAX_ID, description="the staff account's id")]
ArrivalId = Annotated[int, FastApiPath(ge=1, le=MAX_ID, description="the arrival's alert id")]


@dataclass(frozen=True)
class StaffCaller:
    signed_in: SignedIn
    store: Store


def staff_caller(who: SignedInDep, svc: ServicesDep) -> StaffCaller:
    store = staff_arrivals.staff_store(svc, who.user)
    return StaffCaller(who, store)


StaffDep = Annotated[StaffCaller, Depends(staff_caller)]


@router.get("/me", response_model=StaffMe)
def get_me(who: StaffDep, svc: ServicesDep) -> StaffMe:
    """The signed-in staff member and their store."""
    return staff_arrivals.me(who.signed_in.user, who.store)


@router.get("/session", response_model=StaffSession)
def get_session(who: MaybeSignedInDep, svc: ServicesDep) -> StaffSession:
    """Whether the browser is signed in (and as whom): how the app decides to show its
    sign-in form without a 401 in the console; 403 for a user who is not store staff."""
    if who is None:
        return StaffSession(signed_in=False, me=None)
    store = staff_arrivals.staff_store(svc, who.user)
    return StaffSession(signed_in=True, me=staff_arrivals.me(who.user, store))


@router.get("/arrivals", response_model=StaffArrivals)
def list_arrivals(who: StaffDep, svc: ServicesDep) -> StaffArrivals:
    """Today's arrivals in the store (the last `staff_list_hours`), newest first."""
    return staff_arrivals.todays_arrivals(svc, who.store.id)


@router.get("/arrivals/{arrival_id}", response_model=ArrivalCard)
def get_arrival(arrival_id: ArrivalId, who: StaffDep, svc: ServicesDep) -> ArrivalCard:
    return staff_arrivals.arrival(svc, who.store.id, arrival_id)


@router.post("/arrivals/{arrival_id}/greeted", response_model=ArrivalCard)
def post_greeted(arrival_id: ArrivalId, who: StaffDep, svc: ServicesDep) -> ArrivalCard:
    """ "I greeted them": the first staff member to say so wins (409 names who did)."""
    return staff_arrivals.greet(svc, who.signed_in.user, who.store.id, arrival_id)


@router.get("/stream")
async def stream(
    request: Request,
    who: StaffDep,
    svc: ServicesDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Server-sent events: `arrival` (an ArrivalCard), `greeted` (ArrivalGreeted),
    `withdrawn` (ArrivalsWithdrawn). Resumes after Last-Event-ID (a reconnect) or `after`
    (the list's `latest_event_id`, for the first connection); from now without either. Ends
    when the session is signed out, revoked or expires."""
    resumed = resume_point(last_event_id)
    if resumed is None:
        resumed = after
    start = resumed if resumed is not None else await run_in_threadpool(alerts.latest_alert_id, svc)
    store_id = who.store.id

    async def render(batch: list[Alert]) -> list[tuple[int, str, str]]:
        return await run_in_threadpool(staff_arrivals.render, svc, store_id, batch)

    return alert_stream(
        request,
        store_id=store_id,
        after=start,
        kinds=alerts.STAFF_APP_KINDS,
        render=render,
        session_id=who.signed_in.session_id,
    )


@accounts.get("", response_model=list[StaffAccount])
def list_staff(store_id: StoreId, user: UserDep, svc: ServicesDep) -> list[StaffAccount]:
    """The store's staff accounts, with how many devices each is signed in on."""
    return staff_accounts.list_accounts(svc, user, store_id)


@accounts.post("", response_model=StaffAccount, status_code=201)
def open_staff_account(
    store_id: StoreId, body: NewStaffAccount, user: UserDep, svc: ServicesDep
) -> StaffAccount:
    """Open a staff account for the store (409 when the email is taken)."""
    return staff_accounts.open_account(svc, user, store_id, body)


@accounts.delete("/{user_id}/sessions", status_code=204)
def sign_out_staff(store_id: StoreId, user_id: UserId, user: UserDep, svc: ServicesDep) -> Response:
    """Sign the staff member out on every device at once (a lost phone); the account stays."""
    staff_accounts.sign_out_everywhere(svc, user, store_id, user_id)
    return Response(status_code=204)


@accounts.delete("/{user_id}", status_code=204)
def close_staff_account(
    store_id: StoreId, user_id: UserId, user: UserDep, svc: ServicesDep
) -> Response:
    """Close the account: no more sign-ins, every session ended at once."""
    staff_accounts.close_account(svc, user, store_id, user_id)
    return Response(status_code=204)
