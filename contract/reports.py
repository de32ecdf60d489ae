"""Head-office reports on the wire: one table per report, as JSON or CSV.

Every report answers the same shape (`Report`): the filters it ran with, named columns, rows
of plain values (so a CSV is the same table), and a few summary figures. `ReportInfo` lists
what a report is and which extra parameters it takes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "REPORT_NAMES",
    "Cell",
    "UserRole",
    "LoginRequest",
    "LoginResponse",
    "RegionOut",
    "Report",
    "ReportFilters",
    "ReportInfo",
    "ReportParam",
    "Scope",
    "StoreOut",
    "UserOut",
]

Cell = str | int | float | None
UserRole = Literal["admin", "head_office", "store_manager", "store_staff"]

REPORT_NAMES = (
    "traffic",
    "heatmap",
    "customers",
    "frequency",
    "retention",
    "vip",
    "demographics",
    "categories",
    "products",
    "basket",
    "portrait",
    "preferences",
    "forecast",
    "recognition",
)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportFilters(_Wire):
    date_from: date
    date_to: date  # inclusive
    region_id: int | None = None
    store_id: int | None = None
    #: report-specific parameters as given (sku, days, weeks, limit)
    params: dict[str, str | int] = Field(default_factory=dict)


class Report(_Wire):
    report: str
    title: str
    filters: ReportFilters
    columns: list[str]
    rows: list[list[Cell]]
    summary: dict[str, Cell]
    generated_ms: float


class ReportParam(_Wire):
    name: str
    description: str
    required: bool = False
    default: str | int | None = None


class ReportInfo(_Wire):
    name: str
    title: str
    description: str
    params: list[ReportParam] = Field(default_factory=list)


class LoginRequest(_Wire):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class UserOut(_Wire):
    id: int
    email: str
    name: str
    role: UserRole
    store_id: int | None


class LoginResponse(_Wire):
    token: str
    expires_at: datetime
    user: UserOut


class StoreOut(_Wire):
    id: int
    code: str
    name: str
    region_id: int


class RegionOut(_Wire):
    id: int
    name: str


class Scope(_Wire):
    """What the signed-in user may report on."""

    user: UserOut
    regions: list[RegionOut]
    stores: list[StoreOut]
