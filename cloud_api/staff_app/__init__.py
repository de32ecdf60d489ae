"""The staff app: a mobile web app for the shop floor, served by the API (no CDN).

`GET /staff/` is the app shell (sign-in, then the store's arrivals, live); `GET /staff/{path}`
serves its other files from this package: scripts, styles, the web app manifest, icons and
the service worker, which caches the shell only (never `/v1/`: see static/sw.js). The app
holds no data of its own: it signs in with `POST /v1/auth/login` and reads `/v1/staff/*`, so
what a staff member sees is exactly what that API lets them see. Every file is StoreSight's
own (static/LICENSES.md).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from cloud_api.api.static_files import APP_CACHE, CONTENT_TYPES, package_file, page_headers

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: the service worker's scope: the app's pages, not the API
SCOPE = "/staff/"

#: the line of static/sw.js that names its cache; served with the shell's content hash, so a
#: release that changes any shell file installs a new worker, which drops the old cache
WORKER_VERSION_LINE = 'const VERSION = "v1";'

router = APIRouter(include_in_schema=False)


@functools.cache
def shell_version() -> str:
    """A hash of every file the app serves: changes whenever any of them does."""
    digest = hashlib.sha256()
    for file in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(file.relative_to(STATIC_DIR).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def service_worker() -> bytes:
    text = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    if WORKER_VERSION_LINE not in text:
        raise RuntimeError(f"static/sw.js lost its line {WORKER_VERSION_LINE!r}")
    return text.replace(WORKER_VERSION_LINE, f'const VERSION = "{shell_version()}";').encode()


@router.get("/staff")
def staff_no_slash() -> RedirectResponse:
    return RedirectResponse(SCOPE, status_code=307)


@router.get("/staff/")
def staff_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type=CONTENT_TYPES[".html"], headers=page_headers()
    )


@router.get("/staff/sw.js")
def staff_worker() -> Response:
    """The service worker, its cache named after the shell's content; revalidated on every
    navigation, and allowed to control /staff/ only."""
    return Response(
        service_worker(),
        media_type=CONTENT_TYPES[".js"],
        headers={
            "Cache-Control": "no-cache",
            "Service-Worker-Allowed": SCOPE,
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/staff/{path:path}")
def staff_file(path: str) -> FileResponse:
    file = package_file(STATIC_DIR, path, "staff app")
    headers = {"Cache-Control": APP_CACHE, "X-Content-Type-Options": "nosniff"}
    return FileResponse(file, media_type=CONTENT_TYPES[file.suffix.lower()], headers=headers)
