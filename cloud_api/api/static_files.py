"""Files the API serves from its own package (the dashboard, the staff app): no CDN.

`package_file` maps a request path to a file under a package directory, refusing anything
that could lead elsewhere before it touches the file system; `page_headers` are the security
headers of an HTML page that loads only its own origin's files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import HTTPException

#: the only kinds of file served; anything else is a 404
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".md": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}

#: application files change with each release: revalidate often
APP_CACHE = "public, max-age=300, must-revalidate"

#: a page loads only its own files and talks only to its own origin
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def page_headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def package_file(root: Path, path: str, what: str) -> Path:
    """The file at `path` under `root`; 404 ("no such `what` file") for anything else.

    Refuses absolute paths, `..`, hidden files, backslashes and unknown file types before
    touching the file system, then checks again that the resolved file is inside `root`
    (a symbolic link must not lead out).
    """
    missing = HTTPException(404, f"no such {what} file")
    if not path or "\\" in path or "\x00" in path:
        raise missing
    pure = PurePosixPath(path)
    parts = pure.parts
    if pure.is_absolute() or any(p in ("", ".", "..") or p[0] == "." for p in parts):
        raise missing
    if pure.suffix.lower() not in CONTENT_TYPES:
        raise missing
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        raise missing
    return candidate
