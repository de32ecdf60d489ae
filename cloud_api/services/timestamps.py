"""Timestamps a device sends are bounded against the server's clock.

A till's outbox replays checkouts queued while it was offline, so a timestamp may be days
old; one years old or ahead of the server's clock is a broken clock or a hostile device, and
stored it would skew every report built on it. The window is CloudSettings'
`max_timestamp_age_days` back and `max_clock_skew_s` ahead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud_api.services.errors import Unprocessable
from cloud_api.settings import CloudSettings


def check_recent(
    settings: CloudSettings, field: str, value: datetime, now: datetime | None = None
) -> None:
    """Refuse (422 naming `field`) a timestamp outside the server's window."""
    now = now if now is not None else datetime.now(UTC)
    earliest = now - timedelta(days=settings.max_timestamp_age_days)
    latest = now + timedelta(seconds=settings.max_clock_skew_s)
    if value < earliest:
        raise Unprocessable(
            f"{field}: more than {settings.max_timestamp_age_days:g} days before the server's clock"
        )
    if value > latest:
        raise Unprocessable(
            f"{field}: more than {settings.max_clock_skew_s:g} s after the server's clock"
        )
