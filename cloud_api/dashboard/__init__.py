"""The head-office dashboard: static pages served by the API (no CDN), reading /v1/reports.

`GET /dashboard` is the page (sign-in form, then the charts); `GET /dashboard/static/{path}`
serves its files from this package, Chart.js included (see static/vendor/LICENSES.md). The
page holds no data of its own: it signs in with `POST /v1/auth/login` (which sets the session
cookie) and reads `/v1/scope` and `/v1/reports/*`, so what a user sees is exactly what the
report API lets them see.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from cloud_api.api.static_files import (
    APP_CACHE,
    CONTENT_TYPES,
    package_file,
    page_headers,
)

__all__ = ["STATIC_DIR", "router", "static_file"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: the vendored library is versioned by its LICENSES.md entry and changes rarely
VENDOR_CACHE = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


def static_file(path: str) -> Path:
    """The package file at `path` under STATIC_DIR; 404 for anything else."""
    return package_file(STATIC_DIR, path, "dashboard")


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type=CONTENT_TYPES[".html"], headers=page_headers()
    )


@router.get("/dashboard/static/{path:path}")
def static(path: str) -> FileResponse:
    file = static_file(path)
    vendored = file.parent.name == "vendor"
    return FileResponse(
        file,
        media_type=CONTENT_TYPES[file.suffix.lower()],
        headers={
            "Cache-Control": VENDOR_CACHE if vendored else APP_CACHE,
            "X-Content-Type-Options": "nosniff",
        },
    )
