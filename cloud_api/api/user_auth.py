"""User authentication: a session token as `Authorization: Bearer sss_...` or the HttpOnly
cookie `POST /v1/auth/login` sets (the dashboard's and the staff app's requests carry it).

No token, an unknown, expired or signed-out one, or a disabled user's, is 401. What each role
may then see is decided by the dependencies built on this (reports: `report_routes`; the
staff app: `staff_routes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException

from cloud_api.api.auth import ServicesDep
from cloud_api.db.models import User
from cloud_api.services import users

COOKIE = "storesight_session"


def session_token(authorization: str | None, cookie: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return cookie


@dataclass(frozen=True)
class SignedIn:
    user: User
    #: the session's row id: what a stream that outlives the request checks again
    session_id: int


def signed_in(
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    storesight_session: Annotated[str | None, Cookie()] = None,
) -> SignedIn:
    try:
        user, session_id = users.authenticate_session(
            svc, session_token(authorization, storesight_session)
        )
    except users.AuthError as error:
        raise HTTPException(401, str(error)) from None
    return SignedIn(user, session_id)


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


def maybe_signed_in(
    svc: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    storesight_session: Annotated[str | None, Cookie()] = None,
) -> SignedIn | None:
    """The signed-in user, or None (no session, or one that ended): for a page asking
    whether to show its sign-in form, where "no" is an answer, not an error."""
    try:
        return signed_in(svc, authorization, storesight_session)
    except HTTPException:
        return None


MaybeSignedInDep = Annotated[SignedIn | None, Depends(maybe_signed_in)]


def signed_in_user(who: SignedInDep) -> User:
    return who.user


UserDep = Annotated[User, Depends(signed_in_user)]
