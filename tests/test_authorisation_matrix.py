# ruff: noqa: E501  (the matrix is a table: one row per endpoint, one column per caller)
"""The authorisation matrix (issue 13, section 5): every endpoint x every kind of caller ->
the status it must get, over real HTTP, on SQLite and PostgreSQL.

The table below IS the policy; read a row to see who may call an endpoint. The chain is
tests/store_chain.py: region North holds stores A and B, region South holds C. The target
customer `{member}` is a member of store A who was also seen (a visit) in B and in C; `{a_only}` was only ever seen in A; `{missing}` does not exist;
`{victim}` and `{a_victim}` are a fresh `{member}` and `{a_only}` for each call (a delete
consumes them) and `{decision}` a fresh pending "possible member" decision of store A (an
answer consumes it). Reports are the traffic report; B is in North, like A.

Devices: the device kind decides (cloud_api/api/auth.py; a `store_server` key, which only an
in-store store's server holds, is tested with that mode in tests/test_in_store.py); a device sees customers seen in its
store, and another store's customer is a 404 like a missing one; membership changes and
deletes need the customer's home region (cloud_api/services/customers.py). Users (sessions,
`Authorization: Bearer sss_...`) read reports: head office and admins all stores, a store
manager their own (cloud_api/reports/access.py); they have no device endpoint. The staff app's
API (`/v1/staff/*`) is for a store's managers and staff, about their own store only
(`{arrival}`: a member's arrival at A's entrance; another store's manager gets 404 as for a
missing one); head office and admins have none (the `store_staff` role's own rules:
tests/test_staff_app.py). A store's staff accounts (`/v1/stores/{id}/staff`) are managed by
its manager and by admins (`{staff}`: a fresh staff account of A for each call). A login works
whoever asks; logout always answers 204 (signing out a user caller uses a session of its own,
so the shared one lives on).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Route

from cloud_api import admin
from cloud_api.api.app import create_app
from cloud_api.db.models import AlertEvent, Store, User, UserSession, utcnow
from cloud_api.db.session import make_engine, session_factory, transaction
from tests.cloud_fixtures import module_migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import (
    PASSWORD,
    Chain,
    build_chain,
    checkout_body,
    login,
    settings_for,
    sighting_body,
)

pytestmark = pytest.mark.slow

# the callers, in the table's column order
CALLERS = (
    "till_own",  # a till of store A (the store every row's data belongs to)
    "till_store",  # a till of store B: another store, same region
    "till_region",  # a till of store C: another region
    "entrance",  # store A's entrance camera
    "revoked",  # a revoked till key of store A
    "no_key",  # nothing at all
    "head",  # head-office user
    "admin",  # admin user
    "mgr_own",  # store manager of A
    "mgr_other",  # store manager of B
    "expired",  # a head-office session past its expiry
    "signed_out",  # a head-office session that was signed out
)


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: tuple[int, ...]  # one status per caller, in CALLERS order
    body: str | None = None  # the name of a body builder (BODIES)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


# fmt: off
#    method    path                                       till  till  till   entr  revo  no   head  adm  mgr  mgr   expi  sign
#                                                         own   store region ance  ked   key  off.  in   own  other red   out
MATRIX = (
    Row("GET",    "/v1/device",                           (200, 200,  200,   200,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("POST",   "/v1/checkouts",                        (200, 200,  200,   403,  401,  401, 401,  401, 401, 401,  401,  401), "checkout"),
    Row("POST",   "/v1/decisions/{decision}/confirm",     (200, 403,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("POST",   "/v1/decisions/{decision}/reject",      (200, 403,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("POST",   "/v1/sightings",                        (403, 403,  403,   200,  401,  401, 401,  401, 401, 401,  401,  401), "sighting"),
    Row("GET",    "/v1/customers/{member}",               (200, 200,  200,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("GET",    "/v1/customers/{a_only}",               (200, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("GET",    "/v1/customers/{missing}",              (404, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("GET",    "/v1/customers/{member}/history",       (200, 200,  200,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("GET",    "/v1/customers/{a_only}/history",       (200, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("PUT",    "/v1/customers/{member}/membership",    (200, 200,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401), "membership"),
    Row("PUT",    "/v1/customers/{a_only}/membership",    (200, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401), "a_only_membership"),
    Row("DELETE", "/v1/customers/{victim}/membership",    (200, 200,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("DELETE", "/v1/customers/{a_victim}/membership",  (200, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("DELETE", "/v1/customers/{victim}",               (204, 204,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("DELETE", "/v1/customers/{a_victim}",             (204, 404,  404,   403,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("GET",    "/v1/stores/{store_a}/alerts",          (200, 403,  403,   200,  401,  401, 401,  401, 401, 401,  401,  401)),
    Row("PUT",    "/v1/upstream/days",                    (403, 403,  403,   403,  401,  401, 401,  401, 401, 401,  401,  401), "upstream"),
    Row("POST",   "/v1/auth/login",                       (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200), "login"),
    Row("POST",   "/v1/auth/logout",                      (204, 204,  204,   204,  204,  204, 204,  204, 204, 204,  204,  204)),
    Row("GET",    "/v1/auth/me",                          (401, 401,  401,   401,  401,  401, 200,  200, 200, 200,  401,  401)),
    Row("GET",    "/v1/scope",                            (401, 401,  401,   401,  401,  401, 200,  200, 200, 200,  401,  401)),
    Row("GET",    "/v1/reports",                          (401, 401,  401,   401,  401,  401, 200,  200, 200, 200,  401,  401)),
    Row("GET",    "/v1/reports/{name}",                   (401, 401,  401,   401,  401,  401, 200,  200, 200, 200,  401,  401)),
    Row("GET",    "/v1/reports/{name}?store={store_a}",   (401, 401,  401,   401,  401,  401, 200,  200, 200, 403,  401,  401)),
    Row("GET",    "/v1/reports/{name}?region={north}",    (401, 401,  401,   401,  401,  401, 200,  200, 200, 200,  401,  401)),
    Row("GET",    "/v1/reports/{name}?region={south}",    (401, 401,  401,   401,  401,  401, 200,  200, 403, 403,  401,  401)),
    Row("GET",    "/v1/stores/{store_a}/staff",           (401, 401,  401,   401,  401,  401, 403,  200, 200, 403,  401,  401)),
    Row("POST",   "/v1/stores/{store_a}/staff",           (401, 401,  401,   401,  401,  401, 403,  201, 201, 403,  401,  401), "staff_account"),
    Row("DELETE", "/v1/stores/{store_a}/staff/{staff}/sessions", (401, 401, 401, 401, 401,  401, 403,  204, 204, 403,  401,  401)),
    Row("DELETE", "/v1/stores/{store_a}/staff/{staff}",   (401, 401,  401,   401,  401,  401, 403,  204, 204, 403,  401,  401)),
    Row("GET",    "/v1/staff/session",                    (200, 200,  200,   200,  200,  200, 403,  403, 200, 200,  200,  200)),
    Row("GET",    "/v1/staff/me",                         (401, 401,  401,   401,  401,  401, 403,  403, 200, 200,  401,  401)),
    Row("GET",    "/v1/staff/arrivals",                   (401, 401,  401,   401,  401,  401, 403,  403, 200, 200,  401,  401)),
    Row("GET",    "/v1/staff/arrivals/{arrival}",         (401, 401,  401,   401,  401,  401, 403,  403, 200, 404,  401,  401)),
    Row("POST",   "/v1/staff/arrivals/{arrival}/greeted", (401, 401,  401,   401,  401,  401, 403,  403, 200, 404,  401,  401)),
    Row("GET",    "/v1/staff/stream",                     (401, 401,  401,   401,  401,  401, 403,  403, 200, 200,  401,  401)),
    Row("GET",    "/staff",                               (307, 307,  307,   307,  307,  307, 307,  307, 307, 307,  307,  307)),
    Row("GET",    "/staff/",                              (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/staff/sw.js",                         (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/staff/{path}",                        (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/dashboard",                           (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/dashboard/",                          (307, 307,  307,   307,  307,  307, 307,  307, 307, 307,  307,  307)),
    Row("GET",    "/dashboard/static/{path}",             (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/",                                    (307, 307,  307,   307,  307,  307, 307,  307, 307, 307,  307,  307)),
    Row("GET",    "/healthz",                             (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
    Row("GET",    "/readyz",                              (200, 200,  200,   200,  200,  200, 200,  200, 200, 200,  200,  200)),
)
# fmt: on

#: served but not part of the API's authorisation: the generated documentation
DOCUMENTATION = ("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url")


@dataclass
class World:
    chain: Chain
    headers: dict[str, dict[str, str]]
    values: dict[str, Any]


@pytest.fixture(scope="module")
def world(
    module_migrated_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    keys = build_chain(module_migrated_url, users=True)
    settings = settings_for(module_migrated_url, tmp_path_factory.mktemp("index"))
    with serve(settings) as server:
        chain = Chain(server.url, module_migrated_url, keys)
        member, _ = chain.member("M-1", seen_in=(keys.store_b, keys.store_c))
        a_only, _ = chain.member("A-1")
        _, arriving = chain.member("R-1")
        seen = chain.request(
            "POST", "/v1/sightings", keys.entrance_a, sighting_body([arriving, arriving])
        )
        assert seen.status_code == 200 and seen.json()["is_vip"], seen.text
        tokens = {
            caller: login(server.url, email)
            for caller, email in (
                ("head", "head@example.com"),
                ("admin", "admin@example.com"),
                ("mgr_own", "a@example.com"),
                ("mgr_other", "b@example.com"),
                ("expired", "gone@example.com"),
                ("signed_out", "out@example.com"),
            )
        }
        sessions = session_factory(make_engine(module_migrated_url))
        with transaction(sessions) as session:
            gone = session.scalar(select(User.id).where(User.email == "gone@example.com"))
            session.execute(
                update(UserSession)
                .where(UserSession.user_id == gone)
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )
        logout = httpx.post(
            server.url + "/v1/auth/logout",
            headers={"Authorization": f"Bearer {tokens['signed_out']}"},
            timeout=60,
        )
        assert logout.status_code == 204
        device_keys = {
            "till_own": keys.till_a,
            "till_store": keys.till_b,
            "till_region": keys.till_c,
            "entrance": keys.entrance_a,
            "revoked": keys.revoked_till_a,
        }
        headers: dict[str, dict[str, str]] = {"no_key": {}}
        headers |= {caller: {"X-API-Key": key} for caller, key in device_keys.items()}
        headers |= {caller: {"Authorization": f"Bearer {t}"} for caller, t in tokens.items()}
        values: dict[str, Any] = {
            "member": member,
            "a_only": a_only,
            "missing": a_only + 10_000_000,
            "store_a": keys.store_a,
            "north": _region(sessions, keys.store_a),
            "south": _region(sessions, keys.store_c),
            "name": "traffic",
            "path": "app.js",
            "arrival": _newest_alert(sessions),
        }
        yield World(chain, headers, values)


def _newest_alert(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        found = session.scalar(select(func.max(AlertEvent.id)))
        assert found is not None
        return int(found)


def _region(sessions: sessionmaker[Session], store_id: int) -> int:
    with sessions() as session:
        region = session.scalar(select(Store.region_id).where(Store.id == store_id))
        assert region is not None
        return region


def _body(name: str | None, world: World) -> dict[str, Any] | None:
    chain = world.chain
    if name is None:
        return None
    if name == "checkout":
        return checkout_body([chain.unit()])
    if name == "sighting":
        return sighting_body([chain.unit()])
    if name == "membership":  # the member's own details again: allowed callers change nothing
        return {"vip_number": "M-1", "name": "Member M-1", "consent": True}
    if name == "a_only_membership":
        return {"vip_number": "A-1", "name": "Member A-1", "consent": True}
    if name == "login":
        return {"email": "probe@example.com", "password": PASSWORD}
    if name == "staff_account":  # a new staff member of store A, a new email each time
        email = f"staff-{uuid.uuid4().hex[:12]}@example.com"
        return {"email": email, "name": "New Staff", "password": PASSWORD}
    if name == "upstream":  # only an in-store store's server may (tests/test_in_store.py)
        return {"days": [{"day": "2026-01-05"}]}
    raise AssertionError(f"no body named {name!r}")


def _call(row: Row, caller: str, world: World) -> httpx.Response:
    chain = world.chain
    values = dict(world.values)
    if "{victim}" in row.path:
        seen_in = (chain.keys.store_b, chain.keys.store_c)
        values["victim"], _ = chain.member(f"V-{uuid.uuid4().hex[:12]}", seen_in=seen_in)
    if "{a_victim}" in row.path:
        values["a_victim"], _ = chain.member(f"W-{uuid.uuid4().hex[:12]}")
    if "{decision}" in row.path:
        values["decision"] = chain.pending_decision()
    if "{staff}" in row.path:  # a fresh staff account of store A (closing one consumes it)
        engine = make_engine(chain.database_url)
        try:
            with transaction(session_factory(engine)) as session:
                staff_email = f"staff-{uuid.uuid4().hex[:12]}@example.com"
                values["staff"] = admin.create_user(
                    session, staff_email, "Staff", "store_staff", PASSWORD, "N001"
                ).id
        finally:
            engine.dispose()
    headers = world.headers[caller]
    if row.path == "/v1/auth/logout" and "Authorization" in headers:
        # sign out a session of the caller's own, not the one the other rows use
        email = {"head": "head", "admin": "admin", "mgr_own": "a", "mgr_other": "b"}.get(caller)
        if email is not None:
            token = login(chain.url, f"{email}@example.com")
            headers = {"Authorization": f"Bearer {token}"}
    url = chain.url + row.path.format(**values)
    body = _body(row.body, world)
    if row.path.endswith(("/alerts", "/stream")):
        with httpx.stream("GET", url, headers=headers, timeout=60) as stream:
            if stream.status_code == 200:
                first = next(stream.iter_lines())
                assert first.startswith(": connected"), first
            else:
                stream.read()
            return stream
    return httpx.request(row.method, url, json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("row", MATRIX, ids=[r.id for r in MATRIX])
def test_authorisation_matrix(row: Row, world: World) -> None:
    assert len(row.expect) == len(CALLERS), row.id
    wrong = []
    for caller, expected in zip(CALLERS, row.expect, strict=True):
        answer = _call(row, caller, world)
        if answer.status_code != expected:
            wrong.append(f"  {caller}: expected {expected}, got {answer.status_code}")
    assert not wrong, f"{row.id}\n" + "\n".join(wrong)


#: the placeholders of MATRIX's paths, as the app's routes name them
ROUTE_PARAMETERS = {
    "member": "customer_id",
    "a_only": "customer_id",
    "missing": "customer_id",
    "victim": "customer_id",
    "a_victim": "customer_id",
    "decision": "decision_id",
    "arrival": "arrival_id",
    "staff": "user_id",
    "store_a": "store_id",
    "name": "name",
    "path": "path:path",
}


def _endpoints(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, into included routers too (FastAPI >= 0.16x wraps an
    included router in one route of its own that keeps the router as `original_router`)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            inner = prefix + getattr(getattr(route, "include_context", None), "prefix", "")
            yield from _endpoints(included.routes, inner)
        elif isinstance(route, Route) and route.methods:
            for method in route.methods - {"HEAD"}:
                yield method, prefix + route.path


def test_the_matrix_covers_every_endpoint(tmp_path: Path) -> None:
    """A new endpoint must get its row: the matrix is the whole API."""
    app = create_app(settings_for("sqlite://", tmp_path))
    hidden = {getattr(app, name) for name in DOCUMENTATION}
    served = {(m, p) for m, p in _endpoints(app.routes) if p not in hidden}
    as_routes = {k: "{" + v + "}" for k, v in ROUTE_PARAMETERS.items()}
    in_matrix = {(row.method, row.path.split("?")[0].format(**as_routes)) for row in MATRIX}
    assert len(served) > 20, served  # the walk found the routers
    assert served - in_matrix == set(), "endpoints without a row in MATRIX"
    assert in_matrix - served == set(), "rows for endpoints the app does not serve"
