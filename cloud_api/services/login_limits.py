"""Sign-in limits: a token bucket per client address and a capped backoff per account.

- Every sign-in attempt takes a token from its client address's bucket
  (`login_ip_burst` tokens, `login_ip_per_minute` regained a minute); an address with an
  empty bucket is answered 429 before any password is checked, so a flood costs no scrypt
  work and checkouts keep their CPU.
- After `login_free_failures` wrong passwords for one account (known or not: an unknown
  email behaves exactly like a known one), the account is delayed `login_lockout_base_s`,
  doubling with each further failure, never longer than `login_lockout_max_s`. Attempts
  during a delay are answered 429 without checking the password (no oracle) and do not
  lengthen it, so an attacker can hold an account back by at most that cap per guess, never
  lock it out for good. A successful sign-in clears the account's failures; failures older
  than `FORGET_AFTER_S` (or four caps, if longer) are forgotten.

The state is in memory, per API process: with N processes an address gets N buckets. Accounts
are kept by a hash of the normalised email, never the email itself. At most `max_tracked`
addresses and accounts are remembered each (idle ones are dropped first), so a flood of
made-up emails or addresses cannot grow memory without bound.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from cloud_api.services.errors import TooManyRequests
from cloud_api.settings import CloudSettings

log = structlog.get_logger(__name__)

FORGET_AFTER_S = 3600.0
MAX_TRACKED = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _Account:
    failures: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


def account_key(email: str) -> str:
    """What an account is remembered by: a hash of its normalised email."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()


class LoginLimits:
    """The sign-in limits of one API process (thread-safe)."""

    def __init__(
        self,
        settings: CloudSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._burst = float(settings.login_ip_burst)
        self._per_second = settings.login_ip_per_minute / 60.0
        self._free_failures = settings.login_free_failures
        self._base_s = settings.login_lockout_base_s
        self._max_s = settings.login_lockout_max_s
        self._forget_s = max(FORGET_AFTER_S, 4 * settings.login_lockout_max_s)
        self._clock = clock
        self._max_tracked = max_tracked
        self._lock = threading.Lock()
        self._addresses: dict[str, _Bucket] = {}
        self._accounts: dict[str, _Account] = {}

    def admit(self, address: str, email: str) -> None:
        """Count one attempt from `address` for `email`; TooManyRequests when it must wait."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(address, now)
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / self._per_second
                log.info("login_throttled", limit="address")
                raise TooManyRequests("too many sign-in attempts from this address", _seconds(wait))
            bucket.tokens -= 1.0
            account = self._accounts.get(account_key(email))
            if account is not None and account.locked_until > now:
                log.info("login_throttled", limit="account")
                raise TooManyRequests(
                    "too many failed sign-ins for this account",
                    _seconds(account.locked_until - now),
                )

    def failed(self, email: str) -> None:
        """A wrong password (or unknown email): the account's backoff grows."""
        with self._lock:
            now = self._clock()
            key = account_key(email)
            account = self._accounts.get(key)
            if account is None or now - account.last_failure > self._forget_s:
                account = self._accounts[key] = _Account()
                self._prune(self._accounts, now)
            account.failures += 1
            account.last_failure = now
            beyond = account.failures - self._free_failures
            if beyond >= 0:
                delay = min(self._max_s, self._base_s * 2.0 ** min(beyond, 32))
                account.locked_until = now + delay

    def succeeded(self, email: str) -> None:
        """A successful sign-in: the account starts afresh."""
        with self._lock:
            self._accounts.pop(account_key(email), None)

    def _bucket(self, address: str, now: float) -> _Bucket:
        bucket = self._addresses.get(address)
        if bucket is None:
            bucket = self._addresses[address] = _Bucket(self._burst, now)
            self._prune(self._addresses, now)
            return bucket
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._per_second)
        bucket.updated = now
        return bucket

    def _prune(self, table: dict[str, _Bucket] | dict[str, _Account], now: float) -> None:
        """Keep at most `max_tracked` entries: idle ones go first, then the oldest."""
        if len(table) <= self._max_tracked:
            return
        idle = [key for key, entry in table.items() if self._idle(entry, now)]
        for key in idle:
            del table[key]
        while len(table) > self._max_tracked:
            del table[next(iter(table))]

    def _idle(self, entry: _Bucket | _Account, now: float) -> bool:
        if isinstance(entry, _Bucket):
            return entry.tokens + (now - entry.updated) * self._per_second >= self._burst
        return entry.locked_until <= now and now - entry.last_failure > self._forget_s


def _seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least one."""
    return max(1, math.ceil(wait))
