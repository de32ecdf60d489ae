"""Atomic file replacement: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_atomic"]


@contextmanager
def replacing(target: Path, *, mode: int | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside `target`; on a clean exit it replaces `target`.

    The temporary file is a dotfile named after `target` (ending in `suffix`) in the same
    directory, so the final `os.replace` is atomic. `mode`, when given, is set on it before
    the rename. If the block raises, the temporary file is removed and `target` is untouched.
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomic(target: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `target` atomically and durably (flushed and fsynced before the rename)."""
    with replacing(target, mode=mode) as temp, temp.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
