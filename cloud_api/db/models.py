"""Tables. The database is the source of truth; recognition indexes are rebuilt from it.

Personal data lives in `customers` (membership fields) and `face_samples` (descriptors).
Deleting a customer deletes the row, its samples and visits; receipts stay with their
`customer_id` set to NULL, and a `customer_deletions` tombstone (an id and a time, nothing
personal) tells other API processes to drop the customer from their in-memory indexes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids. Every table
# sets sqlite_autoincrement so SQLite never reuses the id of a deleted row: a deleted
# customer's id must never name a new customer (tombstones and indexes refer to ids).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Region(Base):
    __tablename__ = "regions"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stores: Mapped[list[Store]] = relationship(back_populates="region")


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region_id: Mapped[int] = mapped_column(
        ForeignKey("regions.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: "cloud": its tills and cameras talk to this service; "store": a store server in the
    #: store keeps faces and receipts and sends only aggregates (`cloud_api.upstream`)
    mode: Mapped[str] = mapped_column(String(8), default="cloud", server_default="cloud")
    region: Mapped[Region] = relationship(back_populates="stores")


class Device(Base):
    """A till or entrance PC. Its API key is shown once; only a hash is kept."""

    __tablename__ = "devices"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "till" | "entrance"
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    store: Mapped[Store] = relationship()


class User(Base):
    """Head-office and store staff who use reports and administration."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: "admin" | "head_office" | "store_manager" | "store_staff" (the last two: one store)
    role: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[int | None] = mapped_column(
        ForeignKey("stores.id", ondelete="SET NULL"), nullable=True
    )
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # set by `admin disable-user`: no sign-in, no session works; NULL for an active user
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserSession(Base):
    """A signed-in user (dashboard, reports). Only the token's sha256 is kept."""

    __tablename__ = "user_sessions"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    first_store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    # membership: only with consent; cleared (with the row) on deletion
    vip_number: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # estimated demographics (running estimate over visits)
    gender: Mapped[str | None] = mapped_column(String(8), nullable=True)
    age_years: Mapped[float | None] = mapped_column(Float, nullable=True)
    visit_count: Mapped[int] = mapped_column(Integer, default=0)
    lifetime_spend: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    # enrolled as staff: never counted as a visitor or customer in reports
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: the customer withdrew their consent (`DELETE /v1/customers/{id}/membership`): no
    #: membership, and never raised to the staff app again, until they consent anew
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    samples: Mapped[list[FaceSample]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_member(self) -> bool:
        return self.vip_number is not None and self.consent_at is not None


class FaceSample(Base):
    """One descriptor of a customer, with the partition keys it was indexed under."""

    __tablename__ = "face_samples"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    region_id: Mapped[int] = mapped_column(BigId)
    store_id: Mapped[int] = mapped_column(BigId)
    gender: Mapped[str] = mapped_column(String(8))  # "female" | "male" | "unknown"
    age_band: Mapped[int] = mapped_column(Integer)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)  # 128 little-endian float32
    quality: Mapped[float] = mapped_column(Float)
    # taken at a visit whose identity was verified (a loyalty scan, the cashier's confirmation)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    customer: Mapped[Customer] = relationship(back_populates="samples")


class CustomerDeletion(Base):
    """Tombstone read by every API process to drop a deleted customer from its indexes."""

    __tablename__ = "customer_deletions"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentToken(Base):
    """A POS payment-card hash tied to the customer a verified visit showed paying with it.

    Personal data: deleted with the customer."""

    __tablename__ = "payment_tokens"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecognitionDecision(Base):
    """One face decision at a checkout, and what was later learnt about it.

    `outcome` is what the face alone decided: "member" (the card showed the member),
    "returning" (linked to an anonymous customer), "possible_member" (the cashier was asked),
    "new" (nobody close enough: a new anonymous customer), "no_face", or "child" (estimated
    under the age limit: neither matched nor enrolled). `candidate_id` is the customer the
    face pointed at (None for "new"). Ground truth, when it comes: `truth_customer_id` and
    `truth_source` ("loyalty" card scan, "payment" token, "cashier" confirmation), and
    `truth_had_face` (that customer had face samples before this visit, so the face could
    have found them). `cashier` is "confirmed" or "rejected" for a possible member.
    `visit_descriptors` holds the visit's shots (float32 rows) only while a confirmation may
    still add them to a member; it is cleared when the cashier answers or the customer is
    deleted.
    """

    __tablename__ = "recognition_decisions"
    __table_args__ = (
        Index("ix_recognition_decisions_store_at", "store_id", "at"),
        # a till's recent "not me" answers, read at every checkout (identity.recently_rejected)
        Index("ix_recognition_decisions_rejections", "device_id", "cashier", "created_at"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    receipt_id: Mapped[int | None] = mapped_column(
        ForeignKey("receipts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    candidate_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    customer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    level: Mapped[str | None] = mapped_column(String(24), nullable=True)
    searched: Mapped[int] = mapped_column(Integer, default=0)  # customers in the partition
    truth_customer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    truth_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    truth_had_face: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    cashier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    visit_descriptors: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    visit_qualities: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100), index=True)
    brand: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Receipt(Base):
    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("device_id", "idempotency_key"),
        Index("ix_receipts_store_scanned_at", "store_id", "scanned_at"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the answer given the first time, returned again for a retried idempotency key
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    # ground truth from the POS: the member's card number, a salted hash of the payment card
    loyalty_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payment_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    items: Mapped[list[LineItem]] = relationship(
        back_populates="receipt", cascade="all, delete-orphan", order_by="LineItem.id"
    )


class LineItem(Base):
    __tablename__ = "line_items"
    __table_args__ = (
        Index("ix_line_items_store_sold_at", "store_id", "sold_at"),
        Index("ix_line_items_sold_at", "sold_at"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("receipts.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(100))
    brand: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # copies of the receipt's store, time and customer, so sales reports read one table
    store_id: Mapped[int] = mapped_column(BigId)
    sold_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    receipt: Mapped[Receipt] = relationship(back_populates="items")


class Visit(Base):
    """A customer seen in a store: at a checkout, as a companion, or at the entrance."""

    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_store_at", "store_id", "at"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "checkout" | "companion" | "entrance"
    receipt_id: Mapped[int | None] = mapped_column(
        ForeignKey("receipts.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Sighting(Base):
    """Every face the entrance camera reports, identified or not: the visitor count."""

    __tablename__ = "sightings"
    __table_args__ = (
        Index("ix_sightings_store_at", "store_id", "at"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    is_vip: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertEvent(Base):
    """Staff alerts (VIP arrivals), polled by every API process's SSE streams."""

    __tablename__ = "alert_events"
    __table_args__ = (
        Index("ix_alert_events_store_id_id", "store_id", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # the customer an alert is about, so deleting the customer deletes their alerts too
    customer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: indexed for retention (`staff_alert_retention_hours`) and the staff app's day list
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ArrivalGreeting(Base):
    """A staff member greeted the customer of an arrival alert (the staff app's "greeted"):
    one per alert, the first to press wins, so two staff do not approach the same customer.
    Deleted with the alert (the customer's deletion, retention)."""

    __tablename__ = "arrival_greetings"
    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("alert_events.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    by_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---- report rollups: derived from the tables above, rebuilt at will (cloud_api.reports.rollups)


class RollupTraffic(Base):
    """Visitors and transactions per store, day and hour (staff left out)."""

    __tablename__ = "rollup_traffic"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    visitors: Mapped[int] = mapped_column(Integer)
    transactions: Mapped[int] = mapped_column(Integer)
    anonymous: Mapped[int] = mapped_column(Integer)


class RollupSales(Base):
    """Units, revenue and receipts per store, day and product (every sale)."""

    __tablename__ = "rollup_sales"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    receipts: Mapped[int] = mapped_column(Integer)


class RollupCategories(Base):
    """Units, revenue and receipts per store, day and category (every sale)."""

    __tablename__ = "rollup_categories"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    receipts: Mapped[int] = mapped_column(Integer)


class RollupBaskets(Base):
    """Transactions, revenue and units per store and day (every sale)."""

    __tablename__ = "rollup_baskets"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    transactions: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    items: Mapped[Decimal] = mapped_column(Numeric(16, 3))


class RollupVisitorSegments(Base):
    """Entrance visitors per store, day, gender and age band (staff left out)."""

    __tablename__ = "rollup_visitor_segments"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    gender: Mapped[str] = mapped_column(String(8), primary_key=True)
    age_band: Mapped[str] = mapped_column(String(8), primary_key=True)
    visitors: Mapped[int] = mapped_column(Integer)


class RollupSegmentSales(Base):
    """Revenue per store, day, buyer segment (gender, age band) and category: identified
    customers' purchases, staff left out. Segments are the customers' estimates when the
    slice was last computed."""

    __tablename__ = "rollup_segment_sales"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    gender: Mapped[str] = mapped_column(String(8), primary_key=True)
    age_band: Mapped[str] = mapped_column(String(8), primary_key=True)
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2))


class RollupBuyers(Base):
    """Distinct buyers per day in a scope (a store, a region, or the chain: id 0), split
    into those buying for the first time in that scope and those coming back."""

    __tablename__ = "rollup_buyers"
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    buyers: Mapped[int] = mapped_column(Integer)
    new_customers: Mapped[int] = mapped_column(Integer)
    returning_customers: Mapped[int] = mapped_column(Integer)


class RollupCustomerFirst(Base):
    """A customer's first and second purchase in a scope (store, region, chain)."""

    __tablename__ = "rollup_customer_firsts"
    __table_args__ = (
        Index("ix_rollup_customer_firsts_scope_first", "scope", "scope_id", "first_at"),
    )
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    second_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RollupDirty(Base):
    """Store-days whose rollups must be recomputed (a customer deleted or made staff)."""

    __tablename__ = "rollup_dirty"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class RollupCohorts(Base):
    """An in-store store's first-time buyers (at head office, as its store server sent
    them): per day of first purchase, how many bought again after `gap_days` days (rounded
    up; -1: not yet). Cloud stores' retention is read from `rollup_customer_firsts`."""

    __tablename__ = "rollup_cohorts"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    gap_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)


class UpstreamPending(Base):
    """A store server's outbox: store-days whose rollups changed since head office last
    accepted them. `generation` grows at every change, so a day changed again while its push
    was in flight stays pending."""

    __tablename__ = "upstream_pending"
    store_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)


class RollupState(Base):
    """How far the rollups have read: the last receipt and sighting ids taken in."""

    __tablename__ = "rollup_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(BigInteger)
    sighting_id: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
