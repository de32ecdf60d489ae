"""Every error the API returns is an ErrorBody; this is the only place that decides how."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_api.services.errors import ServiceError, TooManyRequests
from contract import ErrorBody, FieldError
from storesight_common.validation import location

log = structlog.get_logger(__name__)


def _body(
    status: int, error: str, detail: str, fields: list[FieldError] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, fields=fields or [])
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(
                field=location(e.get("loc", ()), skip={"body"}) or "body",
                message=str(e.get("msg", "invalid")),
            )
            for e in error.errors()
        ]
        names = ", ".join(f.field for f in fields)
        return _body(422, "invalid_request", f"invalid fields: {names}", fields)

    @app.exception_handler(ServiceError)
    async def service(_: Request, error: ServiceError) -> JSONResponse:
        fields = (
            [FieldError(field=error.detail.split(":")[0], message=error.detail)]
            if (error.status == 422 and ":" in error.detail)
            else []
        )
        response = _body(error.status, error.code, error.detail, fields)
        if isinstance(error, TooManyRequests):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return _body(error.status_code, codes.get(error.status_code, "error"), str(error.detail))

    @app.exception_handler(OperationalError)
    async def database(_: Request, error: OperationalError) -> JSONResponse:
        log.error("database_unavailable", error=str(error.orig))
        return _body(503, "unavailable", "the database is unavailable; retry later")
