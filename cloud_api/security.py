"""Secrets: device API keys and user passwords.

Device API keys look like ``ssk_<prefix>_<secret>``: 8 and 32 characters from the
alphanumeric (URL-safe, double-click-selectable) alphabet, drawn with `secrets`. The prefix
is stored in clear so the key's row can be found with one indexed lookup; only the SHA-256
of the whole key is stored besides. A fast hash is right for keys: with ~190 random bits
in the secret there is nothing for a slow hash to protect against.

User passwords are chosen by people, so they get a slow, salted hash: scrypt, stored as
``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` so the cost can be raised later without
invalidating the passwords already stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string

API_KEY_SCHEME = "ssk"
API_KEY_PREFIX_LENGTH = 8
API_KEY_SECRET_LENGTH = 32
_KEY_ALPHABET = string.ascii_letters + string.digits
_API_KEY_PATTERN = re.compile(
    rf"{API_KEY_SCHEME}_([A-Za-z0-9]{{{API_KEY_PREFIX_LENGTH}}})"
    rf"_[A-Za-z0-9]{{{API_KEY_SECRET_LENGTH}}}"
)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_SALT_BYTES = 16
_SCRYPT_HASH_BYTES = 32
# Bounds on the parameters read back from the database, so a bad row cannot make a login
# allocate gigabytes or spin for minutes.
_SCRYPT_MAX_N = 2**20
_SCRYPT_MAX_R = 32
_SCRYPT_MAX_P = 16
_SCRYPT_MAX_MEM = 256 * 1024 * 1024

MIN_PASSWORD_LENGTH = 8


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """A new device API key: ``(full key, key_prefix, key_hash)``.

    The full key is shown to the operator once and never stored; `key_prefix` is stored in
    clear for lookup and `key_hash` (SHA-256 hex of the full key) for verification.
    """
    prefix = _random_text(API_KEY_PREFIX_LENGTH)
    key = f"{API_KEY_SCHEME}_{prefix}_{_random_text(API_KEY_SECRET_LENGTH)}"
    return key, prefix, _sha256_hex(key)


def parse_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed API key; None for anything malformed."""
    match = _API_KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def verify_api_key(key: str, prefix: str, key_hash: str) -> bool:
    """Whether `key` is the key whose stored prefix and hash are given (constant time)."""
    found = parse_prefix(key)
    if found is None:
        return False
    prefix_ok = hmac.compare_digest(found.encode(), prefix.encode())
    hash_ok = hmac.compare_digest(_sha256_hex(key).encode(), key_hash.encode())
    return prefix_ok and hash_ok


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAX_MEM, dklen=length
    )


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, as ``scrypt$n$r$p$salt_b64$hash_b64``.

    Raises ValueError for an empty password; length policy is the caller's (see
    `MIN_PASSWORD_LENGTH`).
    """
    if not password:
        raise ValueError("password must not be empty")
    salt = secrets.token_bytes(_SCRYPT_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _SCRYPT_HASH_BYTES)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            _b64encode(salt),
            _b64encode(digest),
        )
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a hash made by `hash_password`; False for malformed hashes."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    valid_params = (
        1 < n <= _SCRYPT_MAX_N
        and n & (n - 1) == 0
        and 0 < r <= _SCRYPT_MAX_R
        and 0 < p <= _SCRYPT_MAX_P
        and len(salt) > 0
        and 16 <= len(expected) <= 64
    )
    if not valid_params:
        return False
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """Whether a stored password hash uses weaker parameters than the current ones."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return True
    try:
        return (int(parts[1]), int(parts[2]), int(parts[3])) != (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    except ValueError:
        return True
