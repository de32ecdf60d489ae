"""What `seed` reports: the rows it added (`SeedSummary`), or why it refused (`SeedError`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


class SeedError(Exception):
    """The seed cannot run on this database or with these arguments; the message says why."""


@dataclass(frozen=True)
class SeedSummary:
    """What `seed` added (rows per table) and the days it covers."""

    regions: int
    stores: int
    devices: int
    products: int
    customers: int
    staff: int
    members: int
    sightings: int
    receipts: int
    line_items: int
    visits: int
    first_day: date
    last_day: date
    #: stores whose personal rows are not at head office, only their rollups (in-store mode)
    in_store_codes: tuple[str, ...] = ()

    def rows(self) -> list[tuple[str, int]]:
        """(what, count) pairs, for printing."""
        in_store = (
            [("  of which in-store", len(self.in_store_codes))] if self.in_store_codes else []
        )
        return [
            ("regions", self.regions),
            ("stores", self.stores),
            *in_store,
            ("devices", self.devices),
            ("products", self.products),
            ("customers", self.customers),
            ("  of which staff", self.staff),
            ("  of which members", self.members),
            ("sightings", self.sightings),
            ("receipts", self.receipts),
            ("line_items", self.line_items),
            ("visits", self.visits),
        ]
