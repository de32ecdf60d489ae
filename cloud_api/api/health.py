"""Health for load balancers and orchestrators.

`/healthz` is liveness: the process answers; no detail, no sign-in, no database.
`/readyz` is readiness: the database answers and the recognition index is loaded (503
otherwise). Which check failed, and the index's figures, are shown only to a signed-in admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Header
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud_api.api.auth import ServicesDep
from cloud_api.services import users
from cloud_api.services.context import Services
from contract import ErrorBody

health = APIRouter(tags=["ops"])
_NO_STORE = {"Cache-Control": "no-store"}


@health.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", responses={503: {"model": ErrorBody}})
def readyz(
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    storesight_session: Annotated[str | None, Cookie()] = None,
) -> JSONResponse:
    checks = readiness(svc)
    ready = all(ok for ok, _ in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not_ready"}
    if checks["database"][0] and _is_admin(svc, _token(authorization, storesight_session)):
        body["checks"] = {name: detail for name, (_, detail) in checks.items()}
        body["index"] = svc.recognizer.engine.stats() if checks["index"][0] else None
    return JSONResponse(body, status_code=200 if ready else 503, headers=_NO_STORE)


def readiness(svc: Services) -> dict[str, tuple[bool, str]]:
    """Each check: whether it passed, and what it found."""
    try:
        with svc.sessions() as session:
            session.execute(text("SELECT 1"))
        database = (True, "ok")
    except SQLAlchemyError as error:
        database = (False, f"unreachable ({type(error).__name__})")
    try:
        index = (True, "loaded") if svc.recognizer.ready else (False, "not loaded")
    except RuntimeError:  # closed
        index = (False, "closed")
    return {"database": database, "index": index}


def _token(authorization: str | None, cookie: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return cookie


def _is_admin(svc: Services, token: str | None) -> bool:
    if not token:
        return False
    try:
        return users.authenticate(svc, token).role == "admin"
    except (users.AuthError, SQLAlchemyError):
        return False
