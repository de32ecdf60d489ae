"""Signing in head-office and store users: sessions with opaque tokens (only a hash stored)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import structlog
from sqlalchemy import delete, select

from cloud_api.db.models import Region, Store, User, UserSession, utcnow
from cloud_api.db.session import transaction
from cloud_api.security import verify_password
from cloud_api.services.context import Services
from contract import LoginResponse, RegionOut, Scope, StoreOut, UserOut

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "sss_"


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


def login(svc: Services, email: str, password: str) -> LoginResponse:
    """A new session for valid credentials; the same error whichever part was wrong."""
    now = utcnow()
    with transaction(svc.sessions) as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None or not verify_password(password, user.password_hash):
            log.info("login_refused", email_domain=email.rpartition("@")[2][:64])
            raise AuthError("wrong email or password")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now + timedelta(hours=svc.settings.session_hours)
        session.add(UserSession(user_id=user.id, token_hash=_hash(token), expires_at=expires))
        session.execute(delete(UserSession).where(UserSession.expires_at < now))
        out = user_out(user)
    log.info("login", user=out.id, role=out.role)
    return LoginResponse(token=token, expires_at=expires, user=out)


def logout(svc: Services, token: str) -> None:
    with transaction(svc.sessions) as session:
        session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


def authenticate(svc: Services, token: str | None) -> User:
    if not token:
        raise AuthError("sign in first (POST /v1/auth/login)")
    with svc.sessions() as session:
        row = session.execute(
            select(User, UserSession.expires_at)
            .join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.token_hash == _hash(token))
        ).first()
        if row is None or row[1] <= utcnow():
            raise AuthError("the session has expired or was signed out; sign in again")
        user: User = row[0]
        session.expunge(user)
        return user


def scope(svc: Services, user: User) -> Scope:
    """The regions and stores this user may report on."""
    with svc.sessions() as session:
        stores_query = select(Store).order_by(Store.code)
        if user.role == "store_manager":
            stores_query = stores_query.where(Store.id == (user.store_id or -1))
        stores = list(session.scalars(stores_query))
        region_ids = {s.region_id for s in stores}
        regions_query = select(Region).order_by(Region.name)
        if user.role == "store_manager":
            regions_query = regions_query.where(Region.id.in_(region_ids or {-1}))
        regions = list(session.scalars(regions_query))
        return Scope(
            user=user_out(user),
            regions=[RegionOut(id=r.id, name=r.name) for r in regions],
            stores=[
                StoreOut(id=s.id, code=s.code, name=s.name, region_id=s.region_id) for s in stores
            ],
        )
