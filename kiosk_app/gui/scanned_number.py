"""The receipt number the cashier scans (keyboard-wedge barcode scanner) or types in."""

from __future__ import annotations

import re

__all__ = ["parse_scanned_number"]

_SCANNED_NUMBER = re.compile(r"[A-Za-z0-9-]{1,64}")


def parse_scanned_number(text: str) -> str | None:
    """The receipt number from a scan or typed entry, or None if it cannot be one.

    Surrounding whitespace and the scanner's CR/LF are stripped; what is left must be 1-64
    ASCII letters, digits or hyphens.
    """
    candidate = text.strip()
    return candidate if _SCANNED_NUMBER.fullmatch(candidate) else None
