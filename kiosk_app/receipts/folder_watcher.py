"""The export-folder watcher: receipts from a folder the POS exports ``*.json`` / ``*.csv`` into.

A file is read once its size and modification time are unchanged over two polls; temporary
names (``*.tmp``, ``*~``, ``~*``, dotfiles) are ignored. Valid files move to
``<folder>/processed/``, invalid ones to the intake's dead-letter folder, and a file whose
receipts the handler failed to take to ``<folder>/failed/`` (with a ``.reason.txt``) so staff
can drop it in again.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

import structlog

from kiosk_app.receipts.intake import ReceiptIntake, ReceiptRejected, reason_path
from storesight_common.files import write_atomic
from storesight_common.lifecycle import StartStop

__all__ = ["MAX_FILE_BYTES", "ExportFolderWatcher"]

log = structlog.get_logger(__name__)

MAX_FILE_BYTES = 32 * 1024 * 1024

_Outcome = Literal["processed", "rejected", "failed"]


def _is_temporary(name: str) -> bool:
    lowered = name.lower()
    return (
        name.startswith((".", "~"))
        or name.endswith("~")
        or lowered.endswith((".tmp", ".part", ".partial", ".crdownload"))
    )


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 1
    while target.exists() or reason_path(target).exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    return target


class ExportFolderWatcher(StartStop):
    """Polls a folder the POS exports receipts into; every file is read once, when complete.

    A ``*.json`` / ``*.csv`` file is read when its size and modification time are the same on
    two polls in a row (an empty file waits ten polls). Valid files move to
    ``<folder>/processed/``, invalid ones to the intake's dead-letter folder, and files whose
    receipts the handler failed on to ``<folder>/failed/`` with a ``.reason.txt``. A file that
    vanishes meanwhile is forgotten. Files over `max_file_bytes` are dead-lettered unread.
    """

    EMPTY_FILE_POLLS = 10

    def __init__(
        self,
        intake: ReceiptIntake,
        folder: Path,
        poll_s: float = 0.5,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.intake = intake
        self.folder = Path(folder)
        self.poll_s = poll_s
        self.max_file_bytes = max_file_bytes
        self.processed_dir = self.folder / "processed"
        self.failed_dir = self.folder / "failed"
        if self.folder.resolve() == intake.dead_letter_dir.resolve():
            raise ValueError(
                f"the dead-letter folder must not be the export folder {self.folder} itself "
                "(a subfolder is fine)"
            )
        #: name -> (size, mtime_ns, polls unchanged) of files not yet read
        self._pending: dict[str, tuple[int, int, int]] = {}
        #: name -> (size, mtime_ns, outcome, detail) of files read but not yet moved away
        self._finished: dict[str, tuple[int, int, _Outcome, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder_missing_logged = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="receipt-folder", daemon=True)
        self._thread.start()
        log.info("receipt_watcher_started", folder=str(self.folder), poll_s=self.poll_s)

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(5.0, 4 * self.poll_s))
        self._thread = None
        log.info("receipt_watcher_stopped", folder=str(self.folder))

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # keep watching whatever one file did
                log.exception("receipt_watcher_poll_failed", folder=str(self.folder))
            if self._stop.wait(self.poll_s):
                return

    def poll(self) -> None:
        """One scan of the folder (the thread calls this every `poll_s`)."""
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            if not self._folder_missing_logged:
                log.warning("receipt_watcher_folder_missing", folder=str(self.folder))
                self._folder_missing_logged = True
            return
        self._folder_missing_logged = False
        present: dict[str, tuple[int, int]] = {}
        for entry in entries:
            name = entry.name
            if _is_temporary(name) or Path(name).suffix.lower() not in (".json", ".csv"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            present[name] = (stat.st_size, stat.st_mtime_ns)
        for gone in set(self._pending) - set(present):
            del self._pending[gone]
        for gone in set(self._finished) - set(present):
            del self._finished[gone]

        ready: list[tuple[int, str, int]] = []
        for name, (size, mtime) in present.items():
            finished = self._finished.get(name)
            if finished is not None:
                if finished[:2] == (size, mtime):
                    self._finish(name, finished[2], finished[3])  # retry the move only
                    continue
                del self._finished[name]  # a new file under the same name
            before = self._pending.get(name)
            polls = before[2] + 1 if before is not None and before[:2] == (size, mtime) else 0
            self._pending[name] = (size, mtime, polls)
            needed = 1 if size > 0 else self.EMPTY_FILE_POLLS
            if polls >= needed:
                ready.append((mtime, name, size))
        for _, name, size in sorted(ready):
            self._read(name, size)

    def _read(self, name: str, size: int) -> None:
        path = self.folder / name
        source = f"folder:{name}"
        stat = self._pending.pop(name)
        if size > self.max_file_bytes:
            reason = f"file of {size} bytes is over the limit of {self.max_file_bytes}"
            try:
                self.intake.dead_letter_file(path, source, reason)
            except FileNotFoundError:
                log.info("receipt_watcher_vanished", file=name)
            except OSError:  # nothing was read: the next polls try again
                log.exception("receipt_watcher_move_failed", file=name)
            return
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            log.info("receipt_watcher_vanished", file=name)
            return
        except OSError as error:  # e.g. still locked by the POS on Windows: try again later
            log.info("receipt_watcher_not_readable", file=name, error=str(error))
            return
        if len(raw) != size:  # grew (or shrank) since the last poll: wait until it settles
            return
        outcome: _Outcome
        detail = ""
        try:
            if name.lower().endswith(".csv"):
                self.intake.accept_csv(raw, source)
            else:
                self.intake.accept_json(raw, source)
            outcome = "processed"
        except ReceiptRejected:
            outcome = "rejected"  # the intake kept a copy in the dead letters
        except Exception as error:
            outcome, detail = "failed", f"the handler failed: {type(error).__name__}: {error}"
        self._finished[name] = (stat[0], stat[1], outcome, detail)
        self._finish(name, outcome, detail)

    def _finish(self, name: str, outcome: _Outcome, detail: str) -> None:
        path = self.folder / name
        try:
            if outcome == "rejected":
                path.unlink()
            else:
                folder = self.processed_dir if outcome == "processed" else self.failed_dir
                folder.mkdir(exist_ok=True)
                target = _free_name(folder, name)
                path.rename(target)
                if outcome == "failed":
                    write_atomic(
                        reason_path(target),
                        f"Receipts not taken: {detail}\nsource: folder:{name}\n".encode(),
                    )
                log.info("receipt_watcher_moved", file=name, to=str(target), outcome=outcome)
        except FileNotFoundError:
            log.info("receipt_watcher_vanished", file=name, outcome=outcome)
        except OSError as error:
            log.warning("receipt_watcher_move_failed", file=name, outcome=outcome, error=str(error))
            return  # stays in _finished: the next poll retries the move, never the receipts
        self._finished.pop(name, None)
