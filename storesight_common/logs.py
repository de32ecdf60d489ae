"""Structured logging for every StoreSight process: one call sets it up."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import MutableMapping
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType
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
    """Whatever sys.stderr is at write time (tests and embedding apps swap it), and a copy in
    the log file when `log_to_file` set one."""

    def write(self, text: str) -> int:
        if _file_log is not None and text.strip():
            # handle(), not emit(): it holds the handler's lock, so threads logging at once
            # never roll the file over twice
            _file_log.handle(logging.makeLogRecord({"msg": text.rstrip("\n")}))
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: the rotating log file (the kiosk's, under its data folder), or None
_file_log: RotatingFileHandler | None = None


def log_to_file(path: Path, max_bytes: int = 2_000_000, backups: int = 5) -> Path:
    """Also write every log line (structlog's and the standard library's) to `path`, rotated
    at `max_bytes` with `backups` old files kept, so a machine nobody watches keeps its recent
    history, crashes included. Call after `configure_logging`."""
    global _file_log
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    if _file_log is not None:
        logging.getLogger().removeHandler(_file_log)
        _file_log.close()
    _file_log = handler
    logging.getLogger().addHandler(handler)  # the standard library's records too
    return path


def log_crashes() -> None:
    """An exception nothing caught, in the main thread or any other, is logged (with its
    traceback) as `crashed` before Python's own handling: the log file keeps why it died."""
    previous_hook = sys.excepthook
    previous_thread_hook = threading.excepthook

    def on_crash(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            structlog.get_logger("crash").critical(
                "crashed", thread="main", exc_info=(kind, error, tb)
            )
        previous_hook(kind, error, tb)

    def on_thread_crash(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            structlog.get_logger("crash").critical(
                "crashed",
                thread=args.thread.name if args.thread is not None else "unknown",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )
        previous_thread_hook(args)

    sys.excepthook = on_crash
    threading.excepthook = on_thread_crash


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
