"""sha256 of files, remembered per (path, size, mtime) so a process hashes each file once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from models.errors import ModelCorruptError

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


def expect_sha256(path: Path, expected: str, problem: Callable[[str], str]) -> None:
    """Raise `ModelCorruptError(problem(actual))` unless `path`'s sha256 is `expected`."""
    actual = sha256_of(path)
    if actual != expected:
        raise ModelCorruptError(problem(actual))
