"""Who may see which stores' reports: head office and admins all; a store manager only
their own store (asking for another store or region is refused, not silently narrowed)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import Region, Store, User
from cloud_api.services.errors import Forbidden, NotFound, Unprocessable
from contract import ReportFilters


def authorise(sessions: sessionmaker[Session], user: User, filters: ReportFilters) -> ReportFilters:
    """The filters this user's report runs with, or Forbidden / NotFound."""
    with sessions() as session:
        if user.role == "store_manager":
            return _own_store(session, user, filters)
        if user.role not in ("head_office", "admin"):
            raise Forbidden(f"the role {user.role!r} has no access to reports")
        store_region: int | None = None
        if filters.store_id is not None:
            store_region = session.scalar(
                select(Store.region_id).where(Store.id == filters.store_id)
            )
            if store_region is None:
                raise NotFound(f"no store with id {filters.store_id}")
        if filters.region_id is not None:
            if session.get(Region, filters.region_id) is None:
                raise NotFound(f"no region with id {filters.region_id}")
            if store_region is not None and store_region != filters.region_id:
                raise Unprocessable(
                    f"store: store {filters.store_id} is not in region {filters.region_id}"
                )
        return filters


def _own_store(session: Session, user: User, filters: ReportFilters) -> ReportFilters:
    if user.store_id is None:
        raise Forbidden("this store manager is not assigned to a store")
    if filters.store_id not in (None, user.store_id):
        raise Forbidden("a store manager can only see their own store's reports")
    if filters.region_id is not None:
        region = session.scalar(select(Store.region_id).where(Store.id == user.store_id))
        if filters.region_id != region:
            raise Forbidden("a store manager can only see their own store's reports")
    return filters.model_copy(update={"store_id": user.store_id, "region_id": None})
