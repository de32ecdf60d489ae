"""One kiosk per machine: a second start finds the lock taken, says so and exits.

Two processes on one till would fight over the camera, the receipt port and the outbox. The
lock is an OS file lock (``flock`` on Linux, ``msvcrt.locking`` on Windows) on a file in the
kiosk's data folder: the OS drops it when the process ends however it ends, so a crash or a
power cut never leaves a stale lock behind, and the next start simply takes it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from storesight_common.lifecycle import StartStop

LOCK_FILE = "kiosk.lock"


class AlreadyRunning(RuntimeError):
    """Another kiosk holds the machine's lock; the message names its pid and the lock file."""


class SingleInstance(StartStop):
    """`with SingleInstance(data_dir):` holds the machine's kiosk lock, or raises
    `AlreadyRunning` at once (it never waits)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def start(self) -> None:
        """Take the machine's lock, or raise `AlreadyRunning`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            _lock(handle)
        except OSError:
            holder = _holder(handle)
            handle.close()
            raise AlreadyRunning(
                f"another StoreSight kiosk is already running on this machine (pid {holder}; "
                f"lock {self.path}): close it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def stop(self) -> None:
        """Let the lock go (closing the file drops it)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _holder(handle: IO[str]) -> str:
    """The pid the lock's holder wrote, where it can be read."""
    try:
        handle.seek(0)
        return handle.read().strip() or "unknown"
    except OSError:  # Windows refuses to read a region another process has locked
        return "unknown"


if sys.platform == "win32":
    import msvcrt

    def _lock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
