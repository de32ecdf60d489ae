"""Signing in head-office and store users: sessions with opaque tokens (only a hash stored)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud_api import change_feed
from cloud_api.db.models import Region, Store, User, UserSession, utcnow
from cloud_api.db.session import transaction
from cloud_api.security import hash_password, verify_password
from cloud_api.services.context import Services
from cloud_api.services.login_limits import LoginLimits
from contract import LoginResponse, RegionOut, Scope, StoreOut, UserOut

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "sss_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AuthError(Exception):
    """Not signed in, or the sign-in failed (HTTP 401)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        store_id=user.store_id,
    )


# A hash of a random password, made once with the current scrypt parameters: checked for
# unknown emails, so a refused sign-in takes the same work whether the email exists or not.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(32))


def _user_by_email(session: Session, email: str) -> User | None:
    """The user of a sign-in email; None without a query for one no user can have (control
    characters, which PostgreSQL would refuse as NUL)."""
    normalised = email.strip().lower()
    if _CONTROL.search(normalised):
        return None
    return session.scalar(select(User).where(User.email == normalised))


def login(
    svc: Services,
    email: str,
    password: str,
    *,
    limits: LoginLimits | None = None,
    address: str = "unknown",
) -> LoginResponse:
    """A new session for valid credentials; the same error whichever part was wrong.

    With `limits`, the attempt is counted first (TooManyRequests when it must wait) and
    the outcome recorded. The password is checked against a dummy hash when no such user
    exists, and nothing of the email is logged.
    """
    if limits is not None:
        limits.admit(address, email)
    now = utcnow()
    with transaction(svc.sessions) as session:
        user = _user_by_email(session, email)
        stored = user.password_hash if user is not None else DUMMY_PASSWORD_HASH
        password_ok = verify_password(password, stored)
        if user is None or not password_ok or user.disabled_at is not None:
            reason = "disabled" if password_ok and user is not None else "credentials"
            log.info("login_refused", reason=reason)
            if limits is not None:
                limits.failed(email)
            raise AuthError("wrong email or password")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now + timedelta(hours=session_hours(svc, user.role))
        session.add(UserSession(user_id=user.id, token_hash=_hash(token), expires_at=expires))
        session.execute(delete(UserSession).where(UserSession.expires_at < now))
        out = user_out(user)
    if limits is not None:
        limits.succeeded(email)
    log.info("login", user=out.id, role=out.role)
    return LoginResponse(token=token, expires_at=expires, user=out)


STAFF_ROLE = "store_staff"
#: the roles of one store (`User.store_id` set)
STORE_ROLES = ("store_manager", STAFF_ROLE)
#: the roles that may not report: the staff app is all they use
NO_REPORTS = (STAFF_ROLE,)


def session_hours(svc: Services, role: str) -> float:
    """How long a sign-in lasts: long on a shop floor's phone (the staff app), a working day
    at a desk (the dashboard). Either ends at once when revoked."""
    return svc.settings.staff_session_hours if role == STAFF_ROLE else svc.settings.session_hours


def logout(svc: Services, token: str) -> None:
    with transaction(svc.sessions) as session:
        session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))
        change_feed.notify(session, change_feed.SESSIONS)  # its open streams end


def authenticate(svc: Services, token: str | None) -> User:
    """The signed-in user of a session token; disabled users' sessions do not work."""
    return authenticate_session(svc, token)[0]


def authenticate_session(svc: Services, token: str | None) -> tuple[User, int]:
    """The signed-in user of a session token and the session's id (what a stream that
    outlives the request checks again: `active_session_ids`)."""
    if not token:
        raise AuthError("sign in first (POST /v1/auth/login)")
    with svc.sessions() as session:
        row = session.execute(
            select(User, UserSession.expires_at, UserSession.id)
            .join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.token_hash == _hash(token), User.disabled_at.is_(None))
        ).first()
        if row is None or row[1] <= utcnow():
            raise AuthError("the session has expired or was signed out; sign in again")
        user: User = row[0]
        session.expunge(user)
        return user, row[2]


def active_session_ids(session: Session, session_ids: Iterable[int]) -> set[int]:
    """Which of these user sessions still exist, unexpired, of a user not disabled: one query
    for every user stream of a process (the alert hub asks once per round)."""
    wanted = sorted(set(session_ids))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(UserSession.id)
            .join(User, User.id == UserSession.user_id)
            .where(
                UserSession.id.in_(wanted),
                UserSession.expires_at > utcnow(),
                User.disabled_at.is_(None),
            )
        ).all()
    )


def scope(svc: Services, user: User) -> Scope:
    """The regions and stores this user may report on."""
    with svc.sessions() as session:
        stores_query = select(Store).order_by(Store.code)
        if user.role in STORE_ROLES:
            stores_query = stores_query.where(Store.id == (user.store_id or -1))
        stores = list(session.scalars(stores_query))
        region_ids = {s.region_id for s in stores}
        regions_query = select(Region).order_by(Region.name)
        if user.role in STORE_ROLES:
            regions_query = regions_query.where(Region.id.in_(region_ids or {-1}))
        regions = list(session.scalars(regions_query))
        return Scope(
            user=user_out(user),
            regions=[RegionOut(id=r.id, name=r.name) for r in regions],
            stores=[
                StoreOut(id=s.id, code=s.code, name=s.name, region_id=s.region_id) for s in stores
            ],
        )
