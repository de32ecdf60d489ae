"""The staff app: a mobile web app for the shop floor, served by the API (no CDN).

`GET /staff/` is the app shell (sign-in, then the store's arrivals, live); `GET /staff/{path}`
serves its other files from this package: scripts, styles, the web app manifest, icons and
the service worker, which caches the shell only (never `/v1/`: see static/sw.js). The app
holds no data of its own: it signs in with `POST /v1/auth/login` and reads `/v1/staff/*`, so
what a staff member sees is exactly what that API lets them see. Every file is StoreSight's
own (static/LICENSES.md).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from cloud_api.api.static_files import APP_CACHE, CONTENT_TYPES, package_file, page_headers

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: the service worker's scope: the app's pages, not the API
SCOPE = "/staff/"

router = APIRouter(include_in_schema=False)


@router.get("/staff")
def staff_no_slash() -> RedirectResponse:
    return RedirectResponse(SCOPE, status_code=307)


@router.get("/staff/")
def staff_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type=CONTENT_TYPES[".html"], headers=page_headers()
    )


@router.get("/staff/{path:path}")
def staff_file(path: str) -> FileResponse:
    file = package_file(STATIC_DIR, path, "staff app")
    headers = {"Cache-Control": APP_CACHE, "X-Content-Type-Options": "nosniff"}
    if file.name == "sw.js":
        # the browser checks for a new worker on every navigation; it may only control /staff/
        headers |= {"Cache-Control": "no-cache", "Service-Worker-Allowed": SCOPE}
    return FileResponse(file, media_type=CONTENT_TYPES[file.suffix.lower()], headers=headers)
