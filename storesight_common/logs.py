"""Structured logging for every StoreSight process: one call sets it up."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_NOISY = ("absl", "mediapipe", "urllib3", "httpx", "httpcore", "PIL", "matplotlib")


# C0 and C1 controls (newline, tab, escape, NUL, ...) and Unicode line/paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _clean(value: object) -> object:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def strip_control_characters(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: control characters in the event's strings (an email typed
    with a newline, a name with an escape sequence) are shown as `\\xNN`, so one log line
    stays one line and cannot forge another or drive a terminal. Tracebacks keep theirs."""
    for key, value in event.items():
        if key != "exception":
            event[key] = _clean(value)
    return event


class _CurrentStderr:
    """Whatever sys.stderr is at write time (tests and embedding apps swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Key-value logs on stderr; JSON when `json` is true, or (None) STORESIGHT_LOG_JSON=1."""
    level_name = (level or os.environ.get("STORESIGHT_LOG_LEVEL", "INFO")).upper()
    if json is None:
        json = os.environ.get("STORESIGHT_LOG_JSON", "") == "1"
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            strip_control_characters,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # MediaPipe's C++ side (glog/absl) reads this before it prints anything.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
