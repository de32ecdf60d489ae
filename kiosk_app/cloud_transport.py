"""The kiosk's one way of talking HTTP to the cloud: client, retry policy, error answers.

Every cloud call the till makes (`uplink`, `cloud_client`, `sightings`, `alerts`) goes
through here:

- `make_client`: an `httpx.Client` with the base URL, the device's ``X-API-Key``, explicit
  timeouts and a ``User-Agent`` naming the kiosk and its version. The key is never logged.
- `is_transient`: which answers mean "the cloud cannot take it right now" (5xx, 408, 425,
  429): retried, never taken as a verdict on the request.
- `Backoff`: one retry policy, jittered exponential (``initial_s`` doubling up to ``max_s``,
  +- ``jitter``), bounded, and honouring a ``Retry-After`` (seconds or an HTTP date) up to
  the maximum.
- `CloudError` and `error_from_response`: an error answer (the contract's `ErrorBody`, or
  whatever else came back) read once into one error type with its status, code and detail.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
from pydantic import ValidationError

from contract import ErrorBody, FieldError
from kiosk_app.build_info import build_info

__all__ = [
    "API_KEY_HEADER",
    "REQUEST_ID_HEADER",
    "DEFAULT_TIMEOUT",
    "RETRY_STATUSES",
    "USER_AGENT",
    "Backoff",
    "CloudError",
    "error_from_response",
    "is_transient",
    "kiosk_version",
    "make_client",
    "retry_after_s",
]

API_KEY_HEADER = "X-API-Key"
#: the cloud logs a request under the id its caller gives here
REQUEST_ID_HEADER = "X-Request-ID"
#: connect quickly or give up; a checkout answer may take a few seconds on a busy cloud
DEFAULT_TIMEOUT = httpx.Timeout(connect=2.0, read=10.0, write=5.0, pool=2.0)
#: the cloud cannot take it right now (with any 5xx)
RETRY_STATUSES: frozenset[int] = frozenset({408, 425, 429})
#: the most of an error answer kept (for a log line or the outbox's dead letters)
MAX_DETAIL_CHARS = 2000


def kiosk_version() -> str:
    """This kiosk's version (the package's baked one, or the installed distribution's)."""
    return build_info().version


USER_AGENT = f"storesight-kiosk/{kiosk_version()} httpx/{httpx.__version__}"


def make_client(
    base_url: str,
    api_key: str,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """A client for `base_url` sending the device's key; requests may use paths ("/v1/...").

    Raises UnicodeEncodeError when the key has characters a header cannot carry.
    """
    sent = {API_KEY_HEADER: api_key, "User-Agent": USER_AGENT}
    sent.update(headers or {})
    return httpx.Client(
        base_url=base_url.strip().rstrip("/"),
        headers=sent,
        timeout=timeout,
        transport=transport,
    )


def is_transient(status: int) -> bool:
    """An answer that says "not now" rather than "no": worth a retry after a backoff."""
    return status >= 500 or status in RETRY_STATUSES


def retry_after_s(response: httpx.Response, now: float) -> float | None:
    """What the answer's Retry-After asks for, in seconds from `now` (wall clock)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


@dataclass
class Backoff:
    """Jittered exponential backoff: `initial_s` doubling per failure, at most `max_s`.

    `jitter` spreads each wait by +- that fraction (so tills do not retry in step after an
    outage), never above `max_s`. A Retry-After is honoured: the wait is at least what it
    asks, still at most `max_s`.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")

    def delay_s(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after the `attempt`-th failure in a row (1-based)."""
        doublings = min(max(0, attempt - 1), 60)  # 2.0**n overflows for a long outage
        base = min(self.max_s, self.initial_s * 2.0**doublings)
        spread = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        delay = min(self.max_s, base * (1.0 + spread))
        if retry_after is not None:
            delay = min(self.max_s, max(delay, retry_after))
        return delay


class CloudError(Exception):
    """A cloud call failed; the message says why in words a cashier can pass on.

    `status` is the HTTP status (None when no answer came), `code` the ErrorBody's `error`
    (None when the answer was not an ErrorBody), `detail` the ErrorBody's detail with its
    field messages (or the start of whatever body came back), `fields` its field errors.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        code: str | None = None,
        detail: str = "",
        fields: tuple[FieldError, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields

    @property
    def summary(self) -> str:
        """ "code: detail" for an ErrorBody, else "HTTP status: detail" (bounded)."""
        head = self.code if self.code is not None else f"HTTP {self.status}"
        return f"{head}: {self.detail}"[:MAX_DETAIL_CHARS] if self.detail else head


def error_from_response(response: httpx.Response) -> CloudError:
    """Read an error answer once: the contract's ErrorBody, a bare ``{"detail": "..."}`` (a
    framework's own 404/405), else the start of the body or the status's reason phrase.

    A streamed response is read first.
    """
    status = response.status_code
    try:
        content = response.read()
    except httpx.HTTPError:
        content = b""
    try:
        body = ErrorBody.model_validate_json(content)
    except ValidationError:
        detail = _bare_detail(response, content)
        return CloudError(f"HTTP {status}: {detail}", status, detail=detail)
    detail = body.detail
    if body.fields:
        detail += " (" + "; ".join(f"{f.field}: {f.message}" for f in body.fields) + ")"
    detail = detail[:MAX_DETAIL_CHARS]
    return CloudError(
        f"HTTP {status}: {detail}",
        status,
        code=body.error,
        detail=detail,
        fields=tuple(body.fields),
    )


def _bare_detail(response: httpx.Response, content: bytes) -> str:
    try:
        body = response.json() if content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:MAX_DETAIL_CHARS]
    text = content.decode(response.encoding or "utf-8", errors="replace").strip()
    return (text or response.reason_phrase)[:MAX_DETAIL_CHARS]
