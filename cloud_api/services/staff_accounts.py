"""Staff accounts of a store, managed over the API by the store's manager (or an admin):
open one, list them, sign one out everywhere (a lost phone), close one (disabled: no sign-in,
every session ended at once). The admin CLI does the same (`storesight-cloud admin
create-user --role store_staff`, `revoke-sessions`, `disable-user`)."""

from __future__ import annotations

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api import admin
from cloud_api.db.models import Store, User, UserSession, utcnow
from cloud_api.db.session import transaction
from cloud_api.services.context import Services
from cloud_api.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from cloud_api.services.users import STAFF_ROLE
from contract import NewStaffAccount, StaffAccount

log = structlog.get_logger(__name__)


def _may_manage(user: User, store_id: int) -> None:
    if user.role == "admin":
        return
    if user.role == "store_manager" and user.store_id == store_id:
        return
    raise Forbidden("only the store's manager or an admin manages its staff accounts")


def _store_code(svc: Services, store_id: int) -> str:
    with svc.sessions() as session:
        code = session.scalar(select(Store.code).where(Store.id == store_id))
    if code is None:
        raise NotFound(f"no store with id {store_id}")
    return code


def list_accounts(svc: Services, user: User, store_id: int) -> list[StaffAccount]:
    _may_manage(user, store_id)
    _store_code(svc, store_id)
    live = (
        select(UserSession.user_id, func.count().label("n"))
        .where(UserSession.expires_at > utcnow())
        .group_by(UserSession.user_id)
        .subquery()
    )
    with svc.sessions() as session:
        rows = session.execute(
            select(User, live.c.n)
            .outerjoin(live, live.c.user_id == User.id)
            .where(User.store_id == store_id, User.role == STAFF_ROLE)
            .order_by(User.name, User.id)
        ).all()
        return [_account(u, n or 0) for u, n in rows]


def open_account(svc: Services, user: User, store_id: int, body: NewStaffAccount) -> StaffAccount:
    _may_manage(user, store_id)
    code = _store_code(svc, store_id)
    try:
        with transaction(svc.sessions) as session:
            staff = admin.create_user(
                session, body.email, body.name, STAFF_ROLE, body.password, code
            )
            account = _account(staff, 0)
    except admin.AdminError as error:
        message = str(error)
        if "already exists" in message:
            raise Conflict(message) from None
        raise Unprocessable(message) from None
    log.info("staff_account_opened", store=store_id, user=account.id, by=user.id)
    return account


def sign_out_everywhere(svc: Services, user: User, store_id: int, staff_id: int) -> int:
    """End every session of the staff member (their open streams too); how many."""
    with transaction(svc.sessions) as session:
        staff = _staff_of(session, user, store_id, staff_id)
        ended = admin.revoke_sessions(session, staff.email)
    log.info("staff_signed_out", store=store_id, user=staff_id, by=user.id, sessions=ended)
    return ended


def close_account(svc: Services, user: User, store_id: int, staff_id: int) -> None:
    """Disable the account: no sign-in, every session ended (greetings keep their name)."""
    with transaction(svc.sessions) as session:
        staff = _staff_of(session, user, store_id, staff_id)
        if staff.disabled_at is None:
            admin.disable_user(session, staff.email)
    log.info("staff_account_closed", store=store_id, user=staff_id, by=user.id)


def _staff_of(session: Session, user: User, store_id: int, staff_id: int) -> User:
    _may_manage(user, store_id)
    staff = session.get(User, staff_id)
    if staff is None or staff.store_id != store_id or staff.role != STAFF_ROLE:
        raise NotFound(f"no staff account {staff_id} in this store")
    return staff


def _account(user: User, sessions: int) -> StaffAccount:
    assert user.store_id is not None
    return StaffAccount(
        id=user.id,
        email=user.email,
        name=user.name,
        store_id=user.store_id,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
        signed_in_devices=sessions,
    )
