"""sha256 of files, remembered per (path, size, mtime) so a process hashes each file once."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_CHUNK = 1 << 20
_lock = threading.Lock()
_known: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _known.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _known[key] = value
    return value
