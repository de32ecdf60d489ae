"""Pipeline events, written as JSON lines (one object per line) for other programs to follow."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

Event = dict[str, Any]
EventSink = Callable[[Event], None]


class JsonLinesWriter:
    """Appends events to a file (or stream), one JSON object per line, flushed each time."""

    def __init__(self, target: Path | IO[str]) -> None:
        self._lock = threading.Lock()
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._stream: IO[str] = target.open("a", encoding="utf-8")
            self._owned = True
        else:
            self._stream = target
            self._owned = False

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class EventCollector:
    """Keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]
