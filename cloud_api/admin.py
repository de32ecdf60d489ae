"""Administration: regions, stores, devices and users, for the CLI and for tests.

Every function takes an open `Session` and leaves committing to the caller (use
`cloud_api.db.session.transaction`). A refused action raises `AdminError` with a message
that names what was wrong; the session must then be rolled back, which `transaction` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cloud_api import change_feed
from cloud_api.db.models import Base, Device, Region, Store, User, UserSession, utcnow
from cloud_api.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    new_api_key,
    parse_prefix,
    verify_api_key,
)

DEVICE_KINDS = ("till", "entrance", "store_server")
#: "cloud": the store's devices talk to this service; "store": a store server in the store
#: keeps faces and receipts and sends head office only aggregates
STORE_MODES = ("cloud", "store")
USER_ROLES = ("admin", "head_office", "store_manager", "store_staff")
#: roles that belong to one store: a manager reads its reports, staff use the staff app
STORE_ROLES = ("store_manager", "store_staff")

_STORE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_KEY_ATTEMPTS = 5


class AdminError(Exception):
    """An administrative action was refused; the message says why."""


def _max_length(model: type[Base], column: str) -> int:
    column_type = model.__table__.c[column].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


def _text(value: str, what: str, model: type[Base], column: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise AdminError(f"{what} must not be empty")
    limit = _max_length(model, column)
    if len(cleaned) > limit:
        raise AdminError(f"{what} is too long ({len(cleaned)} characters; at most {limit})")
    return cleaned


def _flush(session: Session, what: str) -> None:
    """Flush, turning a constraint violation (e.g. a concurrent duplicate) into AdminError."""
    try:
        session.flush()
    except IntegrityError as error:
        raise AdminError(f"could not save {what}: {error.orig}") from error


# --- regions ---------------------------------------------------------------------------


def create_region(session: Session, name: str) -> Region:
    """A new region; its name must be unique."""
    name = _text(name, "region name", Region, "name")
    if session.scalar(select(Region.id).where(Region.name == name)) is not None:
        raise AdminError(f"region {name!r} already exists")
    region = Region(name=name)
    session.add(region)
    _flush(session, f"region {name!r}")
    return region


def get_region(session: Session, region: str | int) -> Region:
    """A region by name, or by id (an int, or a string of digits no region is named)."""
    found: Region | None
    if isinstance(region, int):
        found = session.get(Region, region)
    else:
        name = region.strip()
        found = session.scalar(select(Region).where(Region.name == name))
        if found is None and name.isdigit():
            found = session.get(Region, int(name))
    if found is None:
        raise AdminError(f"unknown region {region!r}")
    return found


def list_regions(session: Session) -> Sequence[Region]:
    """All regions, by name, with their stores loaded."""
    return session.scalars(
        select(Region).options(selectinload(Region.stores)).order_by(Region.name)
    ).all()


# --- stores ----------------------------------------------------------------------------


def create_store(
    session: Session, region: str | int, code: str, name: str, mode: str = "cloud"
) -> Store:
    """A new store in `region` (name or id); its code must be unique across all regions.
    `mode`: see STORE_MODES."""
    _check_mode(mode)
    code = _text(code, "store code", Store, "code")
    if not _STORE_CODE.fullmatch(code):
        raise AdminError(
            f"store code {code!r} is not valid: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    name = _text(name, "store name", Store, "name")
    owner = get_region(session, region)
    existing = session.scalar(select(Store).where(Store.code == code))
    if existing is not None:
        raise AdminError(f"store code {code!r} is already used by store {existing.name!r}")
    store = Store(region=owner, code=code, name=name, mode=mode)
    session.add(store)
    _flush(session, f"store {code!r}")
    return store


def _check_mode(mode: str) -> None:
    if mode not in STORE_MODES:
        raise AdminError(f"unknown store mode {mode!r}: use one of {', '.join(STORE_MODES)}")


def set_store_mode(session: Session, code: str, mode: str) -> Store:
    """Move a store between modes (see the README, "In-store mode", for what moves with it)."""
    _check_mode(mode)
    store = get_store(session, code)
    store.mode = mode
    return store


def get_store(session: Session, code: str) -> Store:
    """A store by its code."""
    store = session.scalar(select(Store).where(Store.code == code.strip()))
    if store is None:
        raise AdminError(f"unknown store {code!r}")
    return store


def list_stores(session: Session, region: str | int | None = None) -> Sequence[Store]:
    """All stores (or those of one region), by code, with their region loaded."""
    query = select(Store).options(selectinload(Store.region)).order_by(Store.code)
    if region is not None:
        query = query.where(Store.region_id == get_region(session, region).id)
    return session.scalars(query).all()


# --- devices ---------------------------------------------------------------------------


def create_device(session: Session, store_code: str, kind: str, name: str) -> tuple[Device, str]:
    """A new till or entrance device and its API key.

    Returns ``(device, key)``. The key exists in clear only here: the database keeps its
    prefix and hash, so show it to the operator once and do not log it.
    """
    if kind not in DEVICE_KINDS:
        raise AdminError(f"unknown device kind {kind!r}: use one of {', '.join(DEVICE_KINDS)}")
    name = _text(name, "device name", Device, "name")
    store = get_store(session, store_code)
    for _ in range(_KEY_ATTEMPTS):
        key, prefix, key_hash = new_api_key()
        taken = session.scalar(select(Device.id).where(Device.key_prefix == prefix))
        if taken is None:
            break
    else:  # pragma: no cover - 62**8 prefixes make this practically impossible
        raise AdminError("could not draw an unused API key prefix; try again")
    device = Device(store=store, kind=kind, name=name, key_prefix=prefix, key_hash=key_hash)
    session.add(device)
    _flush(session, f"device {name!r}")
    return device, key


def get_device(session: Session, device_id: int) -> Device:
    """A device by id."""
    device = session.get(Device, device_id)
    if device is None:
        raise AdminError(f"unknown device id {device_id}")
    return device


def _refuse_if_done(what: str, done: str, at: datetime | None) -> None:
    """An action done before is refused, saying when, rather than done again."""
    if at is not None:
        raise AdminError(f"{what} was already {done} at {at.isoformat(timespec='seconds')}")


def revoke_device(session: Session, device_id: int) -> Device:
    """Revoke a device's API key for good; the device row stays for the history."""
    device = get_device(session, device_id)
    _refuse_if_done(f"device {device_id} ({device.name!r})", "revoked", device.revoked_at)
    device.revoked_at = utcnow()
    change_feed.notify(session, change_feed.DEVICES, str(device_id))  # ends its streams
    _flush(session, f"device {device_id}")
    return device


def list_devices(
    session: Session, store_code: str | None = None, *, include_revoked: bool = True
) -> Sequence[Device]:
    """All devices (or those of one store), by store code then id, with their store loaded."""
    query = (
        select(Device)
        .join(Device.store)
        .options(selectinload(Device.store))
        .order_by(Store.code, Device.id)
    )
    if store_code is not None:
        query = query.where(Device.store_id == get_store(session, store_code).id)
    if not include_revoked:
        query = query.where(Device.revoked_at.is_(None))
    return session.scalars(query).all()


def device_for_key(session: Session, key: str) -> Device | None:
    """The active (not revoked) device that `key` belongs to; None for any other key."""
    prefix = parse_prefix(key)
    if prefix is None:
        return None
    device = session.scalar(select(Device).where(Device.key_prefix == prefix))
    if device is None or device.revoked_at is not None:
        return None
    return device if verify_api_key(key, device.key_prefix, device.key_hash) else None


# --- users -----------------------------------------------------------------------------


def create_user(
    session: Session,
    email: str,
    name: str,
    role: str,
    password: str,
    store_code: str | None = None,
) -> User:
    """A new user. Store managers and store staff belong to one store; other roles to none.

    The email is stored lower-cased and must be unique; the password is kept as a salted
    scrypt hash and must be at least `MIN_PASSWORD_LENGTH` characters.
    """
    email = _text(email, "email", User, "email").lower()
    if not _EMAIL.fullmatch(email):
        raise AdminError(f"email {email!r} is not a valid address")
    name = _text(name, "user name", User, "name")
    if role not in USER_ROLES:
        raise AdminError(f"unknown role {role!r}: use one of {', '.join(USER_ROLES)}")
    store: Store | None = None
    if role in STORE_ROLES:
        if not store_code:
            raise AdminError(f"users with role {role!r} need a store")
        store = get_store(session, store_code)
    elif store_code:
        raise AdminError(f"users with role {role!r} are not tied to a store; give no store")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"password is too short (at least {MIN_PASSWORD_LENGTH} characters)")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AdminError(f"a user with email {email!r} already exists")
    user = User(
        email=email,
        name=name,
        role=role,
        store_id=store.id if store is not None else None,
        password_hash=hash_password(password),
    )
    session.add(user)
    _flush(session, f"user {email!r}")
    return user


def list_users(session: Session) -> Sequence[tuple[User, str | None]]:
    """All users by email, each with its store's code (None for users without a store)."""
    rows = session.execute(
        select(User, Store.code).outerjoin(Store, User.store_id == Store.id).order_by(User.email)
    ).all()
    return [(user, code) for user, code in rows]


def get_user(session: Session, email: str) -> User:
    """A user by email (any case)."""
    normalised = email.strip().lower()
    user = None
    if _EMAIL.fullmatch(normalised):  # nothing else was ever stored (nor reaches PostgreSQL)
        user = session.scalar(select(User).where(User.email == normalised))
    if user is None:
        raise AdminError(f"unknown user {email.strip()!r}")
    return user


def revoke_sessions(session: Session, email: str) -> int:
    """End every session of a user at once; how many there were."""
    user = get_user(session, email)
    return _end_sessions(session, user)


def disable_user(session: Session, email: str) -> int:
    """A user may no longer sign in, and their sessions end at once; how many ended."""
    user = get_user(session, email)
    _refuse_if_done(f"user {user.email!r}", "disabled", user.disabled_at)
    user.disabled_at = utcnow()
    ended = _end_sessions(session, user)
    _flush(session, f"user {user.email!r}")
    return ended


def enable_user(session: Session, email: str) -> User:
    """A disabled user may sign in again (their old sessions stay ended)."""
    user = get_user(session, email)
    if user.disabled_at is None:
        raise AdminError(f"user {user.email!r} is not disabled")
    user.disabled_at = None
    _flush(session, f"user {user.email!r}")
    return user


def delete_user(session: Session, email: str) -> int:
    """Delete a user and their sessions; returns the deleted user's id."""
    user = get_user(session, email)
    user_id = user.id
    _end_sessions(session, user)
    session.delete(user)
    _flush(session, f"user {user.email!r}")
    return user_id


def _end_sessions(session: Session, user: User) -> int:
    result = session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    change_feed.notify(session, change_feed.SESSIONS)  # their open staff streams end
    return int(getattr(result, "rowcount", 0) or 0)


def set_staff(session: Session, customer_id: int, staff: bool) -> bool:
    """Mark a customer as staff (left out of visitor and customer counts) or not; True when
    that changed. Their days' report rollups are recomputed at the next refresh."""
    from cloud_api.db.models import Customer
    from cloud_api.reports import rollups

    customer = session.get(Customer, customer_id)
    if customer is None:
        raise AdminError(f"unknown customer id {customer_id}")
    if customer.is_staff == staff:
        return False
    customer.is_staff = staff
    session.flush()
    rollups.customers_changed(session, [customer.id])
    return True
