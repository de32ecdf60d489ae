"""The head-office dashboard: static pages served by the API (no CDN), reading /v1/reports.

`GET /dashboard` is the page (sign-in form, then the charts); `GET /dashboard/static/{path}`
serves its files from this package, Chart.js included (see static/vendor/LICENSES.md). The
page holds no data of its own: it signs in with `POST /v1/auth/login` (which sets the session
cookie) and reads `/v1/scope` and `/v1/reports/*`, so what a user sees is exactly what the
report API lets them see.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

__all__ = ["STATIC_DIR", "router", "static_file"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: the only kinds of file served; anything else is a 404
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".md": "text/plain; charset=utf-8",
}

#: application files change with each release: revalidate often; the vendored library is
#: versioned by its LICENSES.md entry and changes rarely
APP_CACHE = "public, max-age=300, must-revalidate"
VENDOR_CACHE = "public, max-age=86400"

#: the page loads only its own files and talks only to its own origin
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

router = APIRouter(include_in_schema=False)


def static_file(path: str) -> Path:
    """The package file at `path` under STATIC_DIR; 404 for anything else.

    Refuses absolute paths, `..`, hidden files, backslashes and unknown file types before
    touching the file system, then checks again that the resolved file is inside STATIC_DIR
    (a symbolic link must not lead out).
    """
    if not path or "\\" in path or "\x00" in path:
        raise HTTPException(404, "no such dashboard file")
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or any(p in ("", ".", "..") or p[0] == "." for p in parts):
        raise HTTPException(404, "no such dashboard file")
    if PurePosixPath(path).suffix.lower() not in CONTENT_TYPES:
        raise HTTPException(404, "no such dashboard file")
    candidate = STATIC_DIR.joinpath(*parts).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        raise HTTPException(404, "no such dashboard file")
    return candidate


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type=CONTENT_TYPES[".html"],
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": PAGE_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
        },
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
