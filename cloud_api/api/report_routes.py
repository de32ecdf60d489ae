"""Sign-in and reports for head office and store managers.

Users sign in with email and password (`POST /v1/auth/login`); the answer carries a bearer
token and sets an HttpOnly cookie, so the dashboard's requests are authenticated either way.
Reports are JSON (`contract.Report`) or the same table as CSV (`format=csv`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Cookie, Depends, Header, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from cloud_api.api.alert_stream import MAX_ID
from cloud_api.api.auth import ServicesDep
from cloud_api.api.headers import request_is_https
from cloud_api.api.user_auth import COOKIE, UserDep, session_token
from cloud_api.db.models import User
from cloud_api.reports import REPORTS, run_report
from cloud_api.reports.access import authorise
from cloud_api.reports.common import EARLIEST_DAY, check_day
from cloud_api.reports.csv_export import to_csv
from cloud_api.services import users
from cloud_api.services.errors import Forbidden
from contract import (
    LoginRequest,
    LoginResponse,
    PlainText,
    Report,
    ReportFilters,
    ReportInfo,
    Scope,
    UserOut,
)

router = APIRouter(prefix="/v1")
DEFAULT_DAYS = 30
ScopeId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
WholeNumber = Annotated[int | None, Query(ge=-MAX_ID, le=MAX_ID)]


def reporting_user(user: UserDep) -> User:
    """A signed-in user who may read reports: store staff may not (403)."""
    if user.role in users.NO_REPORTS:
        raise Forbidden(f"the role {user.role!r} has no access to reports (the staff app: /staff/)")
    return user


ReportUserDep = Annotated[User, Depends(reporting_user)]


@router.post("/auth/login", response_model=LoginResponse, tags=["reports"])
def login(
    body: LoginRequest, request: Request, response: Response, svc: ServicesDep
) -> LoginResponse:
    """Sign in; 429 with Retry-After when this address or account must wait (see
    cloud_api.services.login_limits)."""
    try:
        answer = users.login(
            svc,
            body.email,
            body.password,
            limits=request.app.state.login_limits,
            address=request.client.host if request.client else "unknown",
        )
    except users.AuthError as error:
        raise HTTPException(401, str(error)) from None
    response.set_cookie(
        COOKIE,
        answer.token,
        max_age=int(users.session_hours(svc, answer.user.role) * 3600),
        httponly=True,
        secure=request_is_https(request, svc.settings),
        samesite="strict",
        path="/",
    )
    return answer


@router.post("/auth/logout", status_code=204, tags=["reports"])
def logout(
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    storesight_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    token = session_token(authorization, storesight_session)
    if token:
        users.logout(svc, token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/auth/me", response_model=UserOut, tags=["reports"])
def me(user: UserDep) -> UserOut:
    return users.user_out(user)


@router.get("/scope", response_model=Scope, tags=["reports"])
def scope(user: ReportUserDep, svc: ServicesDep) -> Scope:
    """The regions and stores the signed-in user may report on."""
    return users.scope(svc, user)


@router.get("/reports", response_model=list[ReportInfo], tags=["reports"])
def list_reports(user: ReportUserDep) -> list[ReportInfo]:
    return list(REPORTS.values())


@router.get("/reports/{name}", response_model=Report, tags=["reports"])
async def get_report(
    name: str,
    user: ReportUserDep,
    svc: ServicesDep,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    region: ScopeId = None,
    store: ScopeId = None,
    format: Literal["json", "csv"] = "json",
    sku: Annotated[PlainText | None, Query(min_length=1, max_length=64)] = None,
    days: WholeNumber = None,
    weeks: WholeNumber = None,
    limit: WholeNumber = None,
) -> Response | Report:
    """One report over [from, to] (dates, inclusive; default the last 30 days)."""
    for field, day in (("from", date_from), ("to", date_to)):
        if day is not None:
            check_day(field, day)
    end = date_to or datetime.now(UTC).date()
    start = date_from or max(EARLIEST_DAY, end - timedelta(days=DEFAULT_DAYS - 1))
    params: dict[str, str | int] = {
        k: v
        for k, v in {"sku": sku, "days": days, "weeks": weeks, "limit": limit}.items()
        if v is not None
    }
    filters = ReportFilters(
        date_from=start, date_to=end, region_id=region, store_id=store, params=params
    )
    filters = await run_in_threadpool(authorise, svc.sessions, user, filters)
    report = await run_in_threadpool(run_report, svc.sessions, name, filters)
    if format == "csv":
        return Response(
            content=to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{name}-{start.isoformat()}-{end.isoformat()}.csv"'
                )
            },
        )
    return report
