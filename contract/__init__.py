"""The wire contract between the kiosk and the cloud: pydantic models, nothing else.

Both sides import these, so a field renamed here is renamed everywhere at once. The module
depends only on pydantic, so the kiosk package pulls in no server code.
"""

from contract.bodies import *  # noqa: F403
from contract.reports import *  # noqa: F403
from contract.staff import *  # noqa: F403
from contract.upstream import *  # noqa: F403
