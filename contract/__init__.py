"""The wire contract between the kiosk and the cloud: pydantic models, nothing else.

Both sides import these, so a field renamed here is renamed everywhere at once. The module
depends only on pydantic, so the kiosk package pulls in no server code.
"""

from contract.models import *  # noqa: F403
from contract.reports import (  # noqa: E402
    REPORT_NAMES as REPORT_NAMES,
    LoginRequest as LoginRequest,
    LoginResponse as LoginResponse,
    RegionOut as RegionOut,
    Report as Report,
    ReportFilters as ReportFilters,
    ReportInfo as ReportInfo,
    ReportParam as ReportParam,
    Scope as Scope,
    StoreOut as StoreOut,
    UserOut as UserOut,
)
