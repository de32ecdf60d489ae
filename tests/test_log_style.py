"""Log event names follow one style: snake_case, so logs can be searched and counted by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "kiosk_app",
    "cloud_api",
    "facelib",
    "storesight_common",
    "models",
    "contract",
    "evaluation",
    "bench",
    "demo",
)
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _log_events(path: Path) -> list[tuple[int, str]]:
    """(line, event name) of each `<logger>.<level>("name", ...)` call in `path`; an argparse
    parser's `.error("message")` is a message for a person, not an event."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id == "parser":
            continue
        found.append((node.lineno, node.args[0].value))
    return found


def test_the_scan_sees_the_log_calls_it_checks(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'log.info("uplink_started")\n'
        'self._log.warning(\n    "Receipt rejected", reason="x")\n'
        'parser.error("--n must be positive")\n',
        encoding="utf-8",
    )
    assert _log_events(sample) == [(1, "uplink_started"), (2, "Receipt rejected")]


def test_every_log_event_name_is_snake_case() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name!r}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in _log_events(path)
        if not SNAKE_CASE.match(name)
    ]
    assert offenders == [], "log event names must be snake_case:\n" + "\n".join(offenders)
