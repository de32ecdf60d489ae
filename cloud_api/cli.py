"""`storesight-cloud`: the multi-store HTTP service, its database and its administration."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cloud_api.admin import AdminError
from cloud_api.db.migrate import SchemaNotCurrent, display_url
from cloud_api.db.session import error_line
from cloud_api.settings import CloudSettings
from facelib.config import FaceLibSettings
from models.errors import ModelError
from storesight_common.logs import configure_logging

PROG = "storesight-cloud"

log = structlog.get_logger(__name__)


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""


Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    # Our own log lines say what migrations do; Alembic's INFO chatter adds nothing.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (CommandError, AdminError, SchemaNotCurrent, ModelError) as error:
        return _fail(str(error))
    except ValidationError as error:
        return _fail(f"invalid settings: {error}")
    except SQLAlchemyError as error:
        return _fail(f"database error: {error_line(error)}")
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


# --- the command line --------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL (default: STORESIGHT_CLOUD_DATABASE_URL or the embedded SQLite file)",
    )

    check = sub.add_parser("check-models", help="load and warm up the models the service runs")
    check.set_defaults(handler=_check_models)

    migrate = sub.add_parser(
        "migrate", parents=[database], help="create or upgrade the database schema"
    )
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(handler=_migrate)

    serve = sub.add_parser("serve", parents=[database], help="run the HTTP API")
    serve.add_argument("--host", help="interface to listen on (default: settings.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: settings.port)")
    serve.add_argument(
        "--workers", type=int, help="API processes serving the port (default: settings.workers)"
    )
    serve.set_defaults(handler=_serve)

    indexer = sub.add_parser(
        "indexer",
        parents=[database],
        help="build the recognition index versions the API processes of this machine map",
        description="Take the index directory's build lock (waiting while another process "
        "holds it), then publish a new index version whenever one is due, until stopped. "
        "Run one per machine with STORESIGHT_CLOUD_INDEX_BUILDER=indexer for its API processes.",
    )
    indexer.add_argument("--once", action="store_true", help="publish one version now, then exit")
    indexer.set_defaults(handler=_indexer)

    seed = sub.add_parser(
        "seed",
        parents=[database],
        help="add synthetic stores, visitors and receipts (for the dashboard and benchmarks)",
        description="Add a chain of synthetic stores with DAYS days of entrance sightings, "
        "receipts, customers and visits to a database without customers or activity "
        "(migrated first if needed). The same --seed gives the same data.",
    )
    seed.add_argument("--stores", type=int, required=True, metavar="N", help="how many stores")
    seed.add_argument("--days", type=int, required=True, metavar="D", help="days of activity")
    seed.add_argument("--end", metavar="YYYY-MM-DD", help="the last day (default: today, UTC)")
    seed.add_argument(
        "--receipts",
        type=int,
        metavar="N",
        help="about this many receipts in all (scales the traffic; default: ~90 a store a day)",
    )
    seed.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    seed.add_argument(
        "--in-store",
        type=int,
        default=0,
        metavar="N",
        help="the last N stores are in-store stores: this database keeps only their report "
        "rollups, as if their store servers had sent them, none of their customers, "
        "sightings, receipts or visits (default 0)",
    )
    seed.set_defaults(handler=_seed)

    admin = sub.add_parser("admin", help="regions, stores, devices and users")
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")

    region = actions.add_parser("create-region", parents=[database], help="add a region")
    region.add_argument("name")
    region.set_defaults(handler=_create_region)

    store = actions.add_parser("create-store", parents=[database], help="add a store")
    store.add_argument("--region", required=True, help="region name or id")
    store.add_argument("--code", required=True, help="unique store code, e.g. LON-001")
    store.add_argument("--name", required=True)
    store.add_argument(
        "--in-store",
        action="store_true",
        help="the store runs its own store server: faces stay there, aggregates come here",
    )
    store.set_defaults(handler=_create_store)

    mode = actions.add_parser(
        "set-store-mode", parents=[database], help="move a store between cloud and in-store"
    )
    mode.add_argument("--store", required=True, help="store code")
    mode.add_argument("--mode", required=True, choices=["cloud", "store"])
    mode.set_defaults(handler=_set_store_mode)

    device = actions.add_parser(
        "create-device", parents=[database], help="add a till or entrance PC and print its key"
    )
    device.add_argument("--store", required=True, help="store code")
    device.add_argument("--kind", required=True, metavar="{till,entrance,store_server}")
    device.add_argument("--name", required=True)
    device.set_defaults(handler=_create_device)

    revoke = actions.add_parser(
        "revoke-device", parents=[database], help="revoke a device's API key"
    )
    revoke.add_argument("--id", type=int, required=True, dest="device_id", help="device id")
    revoke.set_defaults(handler=_revoke_device)

    user = actions.add_parser("create-user", parents=[database], help="add a user")
    user.add_argument("--email", required=True)
    user.add_argument("--name", required=True)
    user.add_argument(
        "--role", required=True, metavar="{admin,head_office,store_manager,store_staff}"
    )
    user.add_argument("--store", help="store code (store managers and store staff only)")
    user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    user.set_defaults(handler=_create_user)

    for action, handler, what in (
        ("disable-user", _disable_user, "stop a user signing in and end their sessions at once"),
        ("enable-user", _enable_user, "let a disabled user sign in again"),
        ("delete-user", _delete_user, "delete a user and their sessions"),
        ("revoke-sessions", _revoke_sessions, "sign a user out everywhere"),
    ):
        account = actions.add_parser(action, parents=[database], help=what)
        account.add_argument("--email", required=True, help="the user's email")
        account.set_defaults(handler=handler)

    staff = actions.add_parser(
        "set-staff",
        parents=[database],
        help="mark a customer as staff (left out of visitor and customer counts), or not",
    )
    staff.add_argument("--customer", type=int, required=True, metavar="ID", help="customer id")
    staff.add_argument("--off", action="store_true", help="the customer is not staff (any more)")
    staff.set_defaults(handler=_set_staff)

    listing = actions.add_parser("list", parents=[database], help="show a table")
    listing.add_argument("what", choices=("regions", "stores", "devices", "users"))
    listing.add_argument("--region", help="stores: only this region (name or id)")
    listing.add_argument("--store", help="devices: only this store (code)")
    listing.set_defaults(handler=_list)
    return parser


# --- helpers -------------------------------------------------------------------------------


def _database_url(args: argparse.Namespace) -> str:
    url: str | None = args.database_url
    return url if url else CloudSettings().database_url


@contextmanager
def _admin_session(args: argparse.Namespace) -> Iterator[Session]:
    """A session on a database at the newest schema; commits when the command succeeds."""
    from cloud_api.db.migrate import ensure_current
    from cloud_api.db.session import make_engine, session_factory, transaction

    url = _database_url(args)
    ensure_current(url)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else ""


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for row in [list(headers), ["-" * width for width in widths], *cells]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if not rows:
        print("(none)")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for the password on; use --password-stdin")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Password again: "):
        raise CommandError("the passwords do not match")
    return password


# --- commands ------------------------------------------------------------------------------


def _check_models(args: argparse.Namespace) -> int:
    from facelib.age_gender import AgeEstimator, GenderEstimator
    from models.store import ModelStore

    store = ModelStore()
    runtime = FaceLibSettings().runtime
    for estimator_type in (AgeEstimator, GenderEstimator):
        started = time.perf_counter()
        estimator = estimator_type(store, runtime)
        estimator.warmup()
        elapsed = (time.perf_counter() - started) * 1000
        print(f"ok  {estimator.model_name:8} loaded and warmed up in {elapsed:.0f} ms")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from cloud_api.db.migrate import current, head_revision, upgrade

    url = _database_url(args)
    upgrade(url, args.revision)
    revision = current(url)
    suffix = " (head)" if revision == head_revision() else ""
    print(f"database {display_url(url)} is at revision {revision}{suffix}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = CloudSettings(**overrides)
    _check_database_reachable(settings)
    try:
        # Imported here: the API pulls in the recognition stack, which no other command needs.
        from cloud_api.api.app import create_app
        from cloud_api.api.shutdown import EndStreamsOnShutdown
    except ImportError as error:
        raise CommandError(f"the API application cannot be loaded: {error}") from error
    log.info(
        "serving",
        host=settings.host,
        port=settings.port,
        database=display_url(settings.database_url),
    )
    # SIGTERM: stop accepting, let requests in flight finish (cut after the grace period),
    # end open event streams at once (cloud_api.api.shutdown), then the app's shutdown.
    if settings.workers == 1:
        uvicorn.run(
            EndStreamsOnShutdown(create_app(settings)),
            host=settings.host,
            port=settings.port,
            log_config=None,
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
        return 0
    # Each worker process builds the app from the environment: hand the overrides down.
    os.environ["STORESIGHT_CLOUD_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "cloud_api.cli:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


def _indexer(args: argparse.Namespace) -> int:
    from cloud_api.services.indexer import run_indexer

    overrides: dict[str, Any] = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = CloudSettings(**overrides)
    _check_database_reachable(settings)
    log.info(
        "indexer_starting",
        index_dir=str(settings.index_dir),
        database=display_url(settings.database_url),
    )
    return run_indexer(settings, once=args.once)


def _check_database_reachable(settings: CloudSettings) -> None:
    """One clear error line (and exit 1) when the database cannot be reached, rather than the
    application's start-up failing with a traceback."""
    from sqlalchemy import text

    from cloud_api.db.session import make_engine

    engine = make_engine(
        settings.database_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s,
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        raise CommandError(
            f"cannot reach the database {display_url(settings.database_url)}: {error_line(error)}"
        ) from None
    finally:
        engine.dispose()


def worker_app() -> Any:
    """The app of one of several `serve` worker processes (uvicorn imports it by name)."""
    from cloud_api.api.app import create_app
    from cloud_api.api.shutdown import EndStreamsOnShutdown

    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return EndStreamsOnShutdown(create_app())


def _create_region(args: argparse.Namespace) -> int:
    from cloud_api.admin import create_region

    with _admin_session(args) as session:
        region = create_region(session, args.name)
    log.info("region_created", region_id=region.id, name=region.name)
    print(f"created region {region.id}: {region.name}")
    return 0


def _create_store(args: argparse.Namespace) -> int:
    from cloud_api.admin import create_store

    with _admin_session(args) as session:
        mode = "store" if args.in_store else "cloud"
        store = create_store(session, args.region, args.code, args.name, mode)
        region_name = store.region.name
    log.info("store_created", store_id=store.id, code=store.code, region=region_name, mode=mode)
    print(f"created store {store.id}: {store.code} ({store.name}) in region {region_name}")
    return 0


def _set_store_mode(args: argparse.Namespace) -> int:
    from cloud_api.admin import set_store_mode

    with _admin_session(args) as session:
        store = set_store_mode(session, args.store, args.mode)
        code = store.code
    log.info("store_mode_set", code=code, mode=args.mode)
    print(f"store {code} is now in {args.mode} mode")
    return 0


def _create_device(args: argparse.Namespace) -> int:
    from cloud_api.admin import create_device

    with _admin_session(args) as session:
        device, key = create_device(session, args.store, args.kind, args.name)
        store_code = device.store.code
    # The key itself is never logged: only its public prefix.
    log.info(
        "device_created",
        device_id=device.id,
        kind=device.kind,
        store=store_code,
        key_prefix=device.key_prefix,
    )
    print(f"created {device.kind} device {device.id}: {device.name!r} in store {store_code}")
    print("API key (shown only this once; only its hash is stored, so copy it now):")
    print(key)
    return 0


def _revoke_device(args: argparse.Namespace) -> int:
    from cloud_api.admin import revoke_device

    with _admin_session(args) as session:
        device = revoke_device(session, args.device_id)
    log.info("device_revoked", device_id=device.id, key_prefix=device.key_prefix)
    print(f"revoked device {device.id}: {device.name!r}; its API key no longer works")
    return 0


def _create_user(args: argparse.Namespace) -> int:
    from cloud_api.admin import create_user

    password = _read_password(args.password_stdin)
    with _admin_session(args) as session:
        user = create_user(session, args.email, args.name, args.role, password, args.store)
    log.info("user_created", user_id=user.id, role=user.role)
    print(f"created user {user.id}: {user.email} ({user.role})")
    return 0


def _disable_user(args: argparse.Namespace) -> int:
    from cloud_api import admin

    with _admin_session(args) as session:
        ended = admin.disable_user(session, args.email)
        user_id = admin.get_user(session, args.email).id
    log.info("user_disabled", user_id=user_id, sessions_ended=ended)
    print(f"disabled user {user_id}: no sign-in from now on; {ended} session(s) ended")
    return 0


def _enable_user(args: argparse.Namespace) -> int:
    from cloud_api import admin

    with _admin_session(args) as session:
        user = admin.enable_user(session, args.email)
    log.info("user_enabled", user_id=user.id)
    print(f"enabled user {user.id}: they may sign in again")
    return 0


def _delete_user(args: argparse.Namespace) -> int:
    from cloud_api import admin

    with _admin_session(args) as session:
        user_id = admin.delete_user(session, args.email)
    log.info("user_deleted", user_id=user_id)
    print(f"deleted user {user_id} and their sessions")
    return 0


def _revoke_sessions(args: argparse.Namespace) -> int:
    from cloud_api import admin

    with _admin_session(args) as session:
        ended = admin.revoke_sessions(session, args.email)
        user_id = admin.get_user(session, args.email).id
    log.info("user_sessions_revoked", user_id=user_id, sessions_ended=ended)
    print(f"ended {ended} session(s) of user {user_id}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from cloud_api.db.migrate import current, head_revision, upgrade
    from cloud_api.seed import SeedError, check_arguments, seed

    end: date | None = None
    if args.end:
        try:
            end = date.fromisoformat(args.end)
        except ValueError as error:
            raise CommandError(f"--end must be a day as YYYY-MM-DD, not {args.end!r}") from error
    try:
        check_arguments(args.stores, args.days, args.receipts, args.seed, args.in_store)
    except SeedError as error:
        raise CommandError(str(error)) from error
    url = _database_url(args)
    if current(url) != head_revision():
        upgrade(url)
    try:
        summary = seed(
            url,
            stores=args.stores,
            days=args.days,
            end=end,
            receipts=args.receipts,
            seed=args.seed,
            in_store=args.in_store,
        )
    except SeedError as error:
        raise CommandError(str(error)) from error
    regions = "region" if summary.regions == 1 else "regions"
    print(
        f"seeded {display_url(url)}: {summary.stores} stores in {summary.regions} {regions}, "
        f"{summary.first_day.isoformat()} to {summary.last_day.isoformat()}"
    )
    _print_table(("added", "rows"), summary.rows())
    if summary.in_store_codes:
        print(
            f"in-store (head office holds only their rollups): {', '.join(summary.in_store_codes)}"
        )
    return 0


def _set_staff(args: argparse.Namespace) -> int:
    from cloud_api import admin

    staff = not args.off
    with _admin_session(args) as session:
        changed = admin.set_staff(session, args.customer, staff)
    log.info("customer_staff_set", customer_id=args.customer, is_staff=staff, changed=changed)
    state = "staff" if staff else "not staff"
    if not changed:
        print(f"customer {args.customer} was already {state}")
    elif staff:
        print(f"customer {args.customer} is now staff: left out of visitor and customer counts")
    else:
        print(f"customer {args.customer} is no longer staff: counted as a customer again")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cloud_api import admin

    with _admin_session(args) as session:
        if args.what == "regions":
            _print_table(
                ("id", "name", "stores", "created"),
                [
                    (r.id, r.name, len(r.stores), _when(r.created_at))
                    for r in admin.list_regions(session)
                ],
            )
        elif args.what == "stores":
            _print_table(
                ("id", "code", "name", "region", "created"),
                [
                    (s.id, s.code, s.name, s.region.name, _when(s.created_at))
                    for s in admin.list_stores(session, args.region)
                ],
            )
        elif args.what == "devices":
            # Never the key hash: the prefix is enough to tell keys apart.
            _print_table(
                ("id", "store", "kind", "name", "key", "created", "revoked"),
                [
                    (
                        d.id,
                        d.store.code,
                        d.kind,
                        d.name,
                        f"ssk_{d.key_prefix}_...",
                        _when(d.created_at),
                        _when(d.revoked_at) or "-",
                    )
                    for d in admin.list_devices(session, args.store)
                ],
            )
        else:
            _print_table(
                ("id", "email", "name", "role", "store", "created", "disabled"),
                [
                    (
                        u.id,
                        u.email,
                        u.name,
                        u.role,
                        code or "-",
                        _when(u.created_at),
                        _when(u.disabled_at) or "-",
                    )
                    for u, code in admin.list_users(session)
                ],
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
