"""Synthetic chain data for the dashboard and the benchmarks: `storesight-cloud seed`.

`seed(url, stores=N, days=D)` adds to a migrated database, with no activity yet, a chain of
stores with their regions, a till and an entrance device each, a product catalogue, and
`days` days (ending `end`, default today UTC) of what the devices would have reported:
entrance sightings, receipts with line items, customers and their visits.

The model behind the numbers (all draws from one `numpy` generator, so a `seed` gives the
same data every time, on SQLite and on PostgreSQL alike):

- Traffic per store and day = store size x weekday (weekends busier) x season (a yearly
  swing peaking at Christmas with a summer dip, a Christmas run-up, January sales, Black
  Friday; closed on 25 December and 1 January) x the store's own trend x day-to-day noise.
- Visitors are people of the store's neighbourhood: a loyal core who come about weekly,
  regulars (monthly), occasional shoppers, each with Poisson visits over an active period
  (some are there from the start, others move in, and people drift away), plus one-off
  visitors. About 6% of visits go to another store of the same region.
- Arrival hours (opening hours 8-21) follow the visitor: older people come in the morning,
  working-age people at lunch and early evening, the young in the afternoon and evening;
  weekends peak around midday. Every visitor passes the entrance camera: one `Sighting`.
- About a third of visitors buy: a `Receipt` with 1-6 line items (bigger baskets at
  weekends) from the categories their age and gender prefer (young: sweets, snacks, drinks;
  older: tea, bakery), with seasonal categories (gifts and sweets in December, drinks in
  summer) and some promotions; the total is the sum of the items.
- Customers exist as the live service creates them: at a checkout where the face was
  captured (~76% of receipts), that is `created_at` and `first_store_id`. Afterwards the
  entrance recognises them (~93% of the time): identified sightings, `Visit(kind="entrance")`;
  their later captured receipts are `Visit(kind="checkout")`. So a person's first visit is
  never identified at the door, and identified traffic grows as the clientele is enrolled.
- `visit_count` counts checkout visits and `lifetime_spend` sums their receipts (what the
  service's checkout does); `last_seen_at` is the last visit of any kind.
- Some customers join the VIP programme (mostly the loyal ones): consent, `VIP-000123`,
  a name, a level by spend; their sightings after consent have `is_vip`.
- 2-3 staff per store (`is_staff`, enrolled before the first day) come in before opening on
  most days, often again after lunch, and sometimes buy something.

`receipts=N` scales traffic so that about N receipts are generated in all.

Rows are written with explicit ids in time order, in one transaction: Core `executemany`
batches on SQLite; psycopg 3's COPY on PostgreSQL (then the id sequences are moved past the
new ids and the tables analysed). A database that already holds customers, sightings,
receipts or visits is refused, so existing data is never mixed with synthetic data.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import numpy as np
import structlog
from numpy.typing import NDArray
from sqlalchemy import Connection, Table, func, insert, select, text
from tqdm import tqdm

from cloud_api.db.migrate import display_url
from cloud_api.db.models import (
    Customer,
    Device,
    LineItem,
    Product,
    Receipt,
    Region,
    Sighting,
    Store,
    Visit,
)
from cloud_api.db.session import make_engine
from cloud_api.security import new_api_key

log = structlog.get_logger(__name__)

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]
Objects = NDArray[np.object_]

MAX_STORES = 9_999
MAX_DAYS = 3_660
MAX_RECEIPTS = 50_000_000
#: visitors an average store sees on an ordinary day (without `receipts=`)
VISITORS_PER_DAY = 240.0
OPEN_HOUR, CLOSE_HOUR = 8, 21
CURRENCY = "EUR"
BATCH_ROWS = 20_000

CHECKOUT_CAPTURE = 0.76  # receipts whose customer's face is captured at the till
ENTRANCE_RECOGNITION = 0.93  # enrolled customers recognised at the door
STAFF_RECOGNITION = 0.97
CROSS_STORE = 0.06  # visits to another store of the home region
STAFF_WORKDAY = 0.78
STAFF_LUNCH_RETURN = 0.45
STAFF_PURCHASE = 0.12
PROMOTION = 0.07  # line items sold at 20% off
FEMALE_SHARE = 0.54
GENDER_MISREAD = 0.03  # estimated gender wrong
AGE_ERROR_YEARS = 2.5

#: (from, to, share) of shoppers' ages
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (16, 25, 0.14), (25, 35, 0.20), (35, 45, 0.19), (45, 55, 0.17), (55, 65, 0.14),
    (65, 75, 0.10), (75, 86, 0.06),
)  # fmt: skip

WEEKDAY_FACTOR = (0.86, 0.84, 0.90, 0.96, 1.12, 1.42, 1.12)  # Monday first
CLOSED = ((12, 25), (1, 1))

REGION_NAMES = (
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Coast",
    "Capital",
    "Highlands",
    "Lakes",
    "Valley",
    "Midlands",
    "Islands",
)
TOWNS = (
    "Ashford", "Bramley", "Carlton", "Dunmore", "Eastleigh", "Fairview", "Glenwood",
    "Harrow Hill", "Ivybridge", "Kingsbury", "Lakeside", "Millbrook", "Newhaven", "Oakridge",
    "Parkgate", "Queensway", "Riverside", "Stonebridge", "Thornbury", "Upton", "Westfield",
    "Yarmouth", "Brookside", "Cliffton", "Denholm", "Elmstead", "Foxley", "Greenhill",
    "Hillcrest", "Kirkby", "Longford", "Marston", "Northgate", "Old Town", "Petersfield",
    "Redcliffe", "Southport", "Tamworth", "Victoria Park", "Woodside",
)  # fmt: skip
FIRST_NAMES = {
    "female": (
        "Anna", "Maria", "Sophie", "Emma", "Laura", "Julia", "Clara", "Hannah", "Eva", "Lea",
        "Nina", "Olivia", "Sarah", "Grace", "Alice", "Mia", "Zoe", "Ella", "Ruth", "Helen",
    ),
    "male": (
        "Lucas", "David", "Thomas", "Jonas", "Paul", "Daniel", "Felix", "Samuel", "Noah",
        "Adam", "Oliver", "Leon", "Peter", "Martin", "Simon", "Henry", "Jacob", "Ben", "Max",
        "Victor",
    ),
}  # fmt: skip
LAST_NAMES = (
    "Smith", "Müller", "García", "Rossi", "Novak", "Jansen", "Dubois", "Kowalski", "Silva",
    "Nielsen", "Brown", "Schmidt", "Martin", "Bianchi", "Horvat", "de Vries", "Lambert",
    "Nowak", "Costa", "Larsen", "Taylor", "Fischer", "Moreau", "Ricci", "Kovač", "Bakker",
    "Fontaine", "Wiśniewska", "Pereira", "Berg",
)  # fmt: skip
MEMBER_LEVELS = ("standard", "silver", "gold")

CATEGORIES = (
    "coffee", "tea", "bakery", "dairy", "produce", "sweets", "snacks", "drinks",
    "ready meals", "household", "personal care", "gifts",
)  # fmt: skip
#: (sku, name, category, brand, price); the first products of a category sell best
CATALOGUE: tuple[tuple[str, str, str, str, str], ...] = (
    ("COF-101", "Espresso beans 1kg", "coffee", "Roastery", "18.90"),
    ("COF-102", "Filter coffee 500g", "coffee", "Roastery", "8.50"),
    ("COF-103", "Instant coffee 200g", "coffee", "Morning Cup", "6.20"),
    ("COF-104", "Coffee capsules x10", "coffee", "Capsa", "4.90"),
    ("COF-105", "Decaf ground coffee 250g", "coffee", "Roastery", "5.40"),
    ("TEA-101", "English breakfast tea x80", "tea", "Hillside", "4.50"),
    ("TEA-102", "Green tea x20", "tea", "Leafy", "3.20"),
    ("TEA-103", "Earl Grey loose leaf 125g", "tea", "Hillside", "5.80"),
    ("TEA-104", "Chamomile tea x20", "tea", "Leafy", "2.90"),
    ("TEA-105", "Chai latte mix", "tea", "Spice Route", "4.10"),
    ("BAK-101", "Sourdough loaf", "bakery", "Crumb", "3.90"),
    ("BAK-102", "Butter croissant", "bakery", "Crumb", "1.40"),
    ("BAK-103", "Wholemeal bread", "bakery", "Millers", "2.30"),
    ("BAK-104", "Carrot cake slice", "bakery", "Crumb", "3.20"),
    ("BAK-105", "Cinnamon bun", "bakery", "Crumb", "2.10"),
    ("DAI-101", "Semi-skimmed milk 1l", "dairy", "Valley Farm", "1.15"),
    ("DAI-102", "Oat milk 1l", "dairy", "Oaty", "2.20"),
    ("DAI-103", "Greek yoghurt 500g", "dairy", "Olympia", "2.80"),
    ("DAI-104", "Mature cheddar 400g", "dairy", "Valley Farm", "4.60"),
    ("DAI-105", "Butter 250g", "dairy", "Valley Farm", "2.40"),
    ("PRO-101", "Bananas x6", "produce", "Fresh Fields", "1.30"),
    ("PRO-102", "Apples x6", "produce", "Fresh Fields", "2.40"),
    ("PRO-103", "Cherry tomatoes 500g", "produce", "Fresh Fields", "1.90"),
    ("PRO-104", "Mixed salad bag", "produce", "Green Leaf", "1.60"),
    ("PRO-105", "Avocados x2", "produce", "Fresh Fields", "2.20"),
    ("SWE-101", "Milk chocolate bar", "sweets", "Cacao Co", "1.20"),
    ("SWE-102", "Dark chocolate 100g", "sweets", "Cacao Co", "2.40"),
    ("SWE-103", "Gummy bears 200g", "sweets", "Fruity", "1.80"),
    ("SWE-104", "Biscuit assortment", "sweets", "Biscotto", "3.60"),
    ("SWE-105", "Praline gift box", "sweets", "Cacao Co", "12.90"),
    ("SNA-101", "Sea salt crisps", "snacks", "Crunch", "1.50"),
    ("SNA-102", "Salted nuts 200g", "snacks", "Nutty", "3.30"),
    ("SNA-103", "Protein bar", "snacks", "Fuel", "2.20"),
    ("SNA-104", "Sweet popcorn", "snacks", "Crunch", "1.70"),
    ("SNA-105", "Rice cakes", "snacks", "Lite", "1.40"),
    ("DRI-101", "Sparkling water 1.5l", "drinks", "Clear Spring", "0.90"),
    ("DRI-102", "Orange juice 1l", "drinks", "Sunny", "2.60"),
    ("DRI-103", "Cola 1.5l", "drinks", "Fizz", "1.90"),
    ("DRI-104", "Energy drink 250ml", "drinks", "Volt", "1.60"),
    ("DRI-105", "Peach iced tea 500ml", "drinks", "Leafy", "1.50"),
    ("RDY-101", "Chicken wrap", "ready meals", "Deli Fresh", "3.80"),
    ("RDY-102", "Pasta salad", "ready meals", "Deli Fresh", "3.50"),
    ("RDY-103", "Lasagne for one", "ready meals", "Nonna", "4.20"),
    ("RDY-104", "Sushi box", "ready meals", "Umami", "6.90"),
    ("RDY-105", "Vegetable soup", "ready meals", "Deli Fresh", "2.90"),
    ("HOU-101", "Washing-up liquid", "household", "Sparkle", "1.80"),
    ("HOU-102", "Kitchen roll x2", "household", "Softy", "2.90"),
    ("HOU-103", "Laundry pods x24", "household", "Sparkle", "7.90"),
    ("HOU-104", "Bin bags x20", "household", "Strong", "2.50"),
    ("HOU-105", "Dishwasher tablets x30", "household", "Sparkle", "6.40"),
    ("PER-101", "Toothpaste", "personal care", "Brite", "2.30"),
    ("PER-102", "Shampoo 400ml", "personal care", "Silk", "4.20"),
    ("PER-103", "Deodorant", "personal care", "Fresh Day", "2.90"),
    ("PER-104", "Hand cream", "personal care", "Silk", "3.60"),
    ("PER-105", "Razor blades x4", "personal care", "Edge", "8.90"),
    ("GIF-101", "Greeting card", "gifts", "Papercraft", "2.95"),
    ("GIF-102", "Flower bouquet", "gifts", "Bloom", "8.00"),
    ("GIF-103", "Scented candle", "gifts", "Glow", "9.50"),
    ("GIF-104", "Travel mug", "gifts", "Roastery", "14.00"),
    ("GIF-105", "Gift wrap roll", "gifts", "Papercraft", "3.20"),
)
PRODUCTS_PER_CATEGORY = 5
PRODUCT_POPULARITY = (0.34, 0.24, 0.18, 0.14, 0.10)

#: category preference (rows: ages 16-24, 25-39, 40-59, 60+; columns: CATEGORIES)
AGE_PREFERENCES = (
    (4, 1, 4, 3, 3, 14, 14, 14, 12, 2, 5, 3),
    (11, 3, 7, 7, 9, 6, 7, 8, 12, 6, 7, 4),
    (10, 6, 9, 10, 12, 5, 5, 6, 7, 10, 6, 5),
    (6, 14, 14, 12, 12, 6, 2, 3, 5, 9, 5, 6),
)
GENDER_PREFERENCES = {
    "female": {"personal care": 1.5, "produce": 1.2, "gifts": 1.3, "sweets": 1.1, "tea": 1.1},
    "male": {"snacks": 1.25, "drinks": 1.25, "ready meals": 1.2, "coffee": 1.1},
}
#: month (1-12) -> category -> factor
SEASONAL_CATEGORIES: dict[int, dict[str, float]] = {
    1: {"tea": 1.25, "produce": 1.1, "sweets": 0.8},
    2: {"tea": 1.2, "gifts": 1.4, "sweets": 1.2},
    3: {"tea": 1.1},
    4: {"sweets": 1.25, "gifts": 1.1},
    5: {"gifts": 1.25, "produce": 1.1},
    6: {"drinks": 1.4, "produce": 1.15, "tea": 0.85, "ready meals": 1.1},
    7: {"drinks": 1.6, "produce": 1.2, "tea": 0.8, "snacks": 1.1},
    8: {"drinks": 1.5, "produce": 1.15, "tea": 0.8, "snacks": 1.1},
    9: {"bakery": 1.05},
    10: {"tea": 1.15, "sweets": 1.1},
    11: {"tea": 1.25, "sweets": 1.2, "gifts": 1.3},
    12: {"sweets": 1.7, "gifts": 2.3, "bakery": 1.2, "coffee": 1.15, "tea": 1.2},
}
#: product -> factor for (female, male, under 25, 60 and over)
PRODUCT_AFFINITY: dict[str, tuple[float, float, float, float]] = {
    "PER-105": (0.15, 3.0, 0.8, 0.8),
    "PER-104": (2.5, 0.4, 1.0, 1.5),
    "DRI-104": (0.7, 1.5, 3.0, 0.2),
    "SNA-103": (0.8, 1.8, 1.6, 0.4),
    "SWE-105": (1.2, 0.9, 0.5, 1.8),
    "TEA-104": (1.6, 0.6, 1.0, 1.3),
    "RDY-104": (1.2, 0.9, 1.4, 0.5),
    "DAI-102": (1.4, 0.7, 1.6, 0.6),
    "COF-104": (1.0, 1.0, 1.3, 0.6),
    "BAK-101": (1.0, 1.0, 0.7, 1.4),
}

#: arrival weights for hours 8..20 (rows: older, working age, young, weekend)
HOUR_PROFILES = (
    (5, 8, 10, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1),
    (2, 3, 3, 5, 9, 8, 4, 4, 6, 10, 10, 7, 3),
    (1, 2, 3, 4, 7, 7, 6, 7, 8, 9, 9, 8, 5),
    (2, 4, 7, 9, 10, 9, 8, 8, 7, 6, 5, 4, 2),
)
WEEKEND_HOURS_SHARE = 0.6  # weekend arrivals: this much the weekend profile, the rest own


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float  # of all visits
    rate: float  # mean visits a day, on a day of ordinary traffic
    rate_shape: float  # gamma shape of the rate across people
    from_start: float  # share already shopping here on the first day
    lifetime_days: float  # mean time until they drift away
    buy: float  # mean chance of buying on a visit
    member: float  # chance that a customer joins the VIP programme


SEGMENTS = (
    _Segment("loyal", 0.50, 0.16, 3.0, 0.70, 700.0, 0.44, 0.32),
    _Segment("regular", 0.28, 0.045, 2.0, 0.55, 400.0, 0.36, 0.12),
    _Segment("occasional", 0.14, 0.014, 2.0, 0.45, 300.0, 0.30, 0.04),
)
ONE_OFF = _Segment("one-off", 0.08, 0.0, 1.0, 0.0, 0.0, 0.26, 0.01)
BUY_SHARE = sum(s.share * s.buy for s in (*SEGMENTS, ONE_OFF))


class SeedError(Exception):
    """The seed cannot run on this database or with these arguments; the message says why."""


@dataclass(frozen=True)
class SeedSummary:
    """What `seed` added (rows per table) and the days it covers."""

    regions: int
    stores: int
    devices: int
    products: int
    customers: int
    staff: int
    members: int
    sightings: int
    receipts: int
    line_items: int
    visits: int
    first_day: date
    last_day: date

    def rows(self) -> list[tuple[str, int]]:
        """(what, count) pairs, for printing."""
        return [
            ("regions", self.regions),
            ("stores", self.stores),
            ("devices", self.devices),
            ("products", self.products),
            ("customers", self.customers),
            ("  of which staff", self.staff),
            ("  of which members", self.members),
            ("sightings", self.sightings),
            ("receipts", self.receipts),
            ("line_items", self.line_items),
            ("visits", self.visits),
        ]


# --- generation ------------------------------------------------------------------------


@dataclass
class _Calendar:
    days: list[date]
    start: I64  # epoch seconds of each day's midnight (UTC)
    weekday: I64
    month: I64
    weekend: Bools
    factor: F64  # traffic of the day relative to an ordinary day; 0 when closed


def _black_friday(day: date) -> bool:
    return day.month == 11 and day.weekday() == 4 and 23 <= day.day <= 29


def _season(day: date) -> float:
    if (day.month, day.day) in CLOSED:
        return 0.0
    doy = day.timetuple().tm_yday
    value = 1.0 + 0.10 * math.cos(2.0 * math.pi * (doy - 356) / 365.25)  # winter high
    if day.month in (7, 8):
        value -= 0.06  # people are away
    if day.month == 12 and day.day <= 24:
        value += 0.45 * (day.day / 24.0) ** 2  # the Christmas run-up
    if day.month == 1 and day.day <= 7:
        value += 0.12  # January sales
    if _black_friday(day):
        value += 0.5
    return value


def _calendar(end: date, days: int) -> _Calendar:
    dates = [end - timedelta(days=days - 1 - i) for i in range(days)]
    epoch = date(1970, 1, 1)
    weekday = np.array([d.weekday() for d in dates], dtype=np.int64)
    return _Calendar(
        days=dates,
        start=np.array([(d - epoch).days * 86_400 for d in dates], dtype=np.int64),
        weekday=weekday,
        month=np.array([d.month for d in dates], dtype=np.int64),
        weekend=weekday >= 5,
        factor=np.array(
            [WEEKDAY_FACTOR[d.weekday()] * _season(d) for d in dates], dtype=np.float64
        ),
    )


def _cumulative(weights: F64) -> F64:
    """Row-wise cumulative distribution (rows of zeros stay zero, last column 1 otherwise)."""
    sums = weights.sum(axis=1, keepdims=True)
    cum: F64 = np.cumsum(weights, axis=1) / np.where(sums > 0, sums, 1.0)
    cum[:, -1] = np.where(sums[:, 0] > 0, 1.0, 0.0)
    return cum


def _sample_rows(cum: F64, rows: I64, u: F64) -> I64:
    """For each draw, the index picked from row `rows[i]` of `cum` by the uniform `u[i]`."""
    n_rows, width = cum.shape
    flat = (cum + np.arange(n_rows, dtype=np.float64)[:, None]).ravel()
    picked = np.searchsorted(flat, rows + u, side="right") - rows * width
    return np.clip(picked, 0, width - 1).astype(np.int64)


@dataclass
class _Chain:
    names: list[str]
    region_names: list[str]
    region: I64  # region index of each store
    size: F64
    traffic: F64  # (stores, days): expected visitors relative to `base`
    staff: I64  # staff count per store


@dataclass
class _People:
    store: I64  # home store
    segment: I64  # index into SEGMENTS, len(SEGMENTS) for one-off visitors
    buy: F64
    female: Bools
    age: F64
    profile: I64  # arrival-hour profile (0 older, 1 working age, 2 young)
    staff: Bools


@dataclass
class _Activity:
    """Everything generated, as arrays; people index `_People`, customers are enrolled people."""

    chain: _Chain
    people: _People
    customer_of: I64  # person -> customer index (-1: never enrolled)
    customer_person: I64  # customer index -> person
    customer_created: I64
    customer_first_store: I64
    consent_at: I64  # per customer, -1 when not a member
    sighting_store: I64
    sighting_at: I64
    sighting_customer: I64  # -1 when unidentified
    sighting_vip: Bools
    receipt_store: I64
    receipt_at: I64
    receipt_customer: I64
    receipt_total: I64  # cents
    item_receipt: I64
    item_product: I64
    item_quantity: I64
    item_price: I64  # cents
    visit_customer: I64
    visit_store: I64
    visit_checkout: Bools
    visit_receipt: I64  # -1 for entrance visits
    visit_at: I64


def _chain(rng: np.random.Generator, stores: int, calendar: _Calendar) -> _Chain:
    n_regions = max(1, math.ceil(stores / 10))
    region = (np.arange(stores, dtype=np.int64) * n_regions) // stores
    region_names = [
        REGION_NAMES[i] if i < len(REGION_NAMES) else f"Region {i + 1}" for i in range(n_regions)
    ]
    size = rng.lognormal(0.0, 0.35, stores)
    size /= size.mean()
    trend = rng.normal(0.04, 0.06, stores)  # growth a year
    n_days = len(calendar.days)
    years = (np.arange(n_days) - n_days / 2.0) / 365.0
    noise = rng.lognormal(0.0, 0.10, (stores, n_days))
    traffic = (
        size[:, None]
        * np.clip(1.0 + trend[:, None] * years[None, :], 0.5, 1.5)
        * calendar.factor[None, :]
        * noise
    )
    names = []
    for i in range(stores):
        town = TOWNS[i % len(TOWNS)]
        names.append(town if i < len(TOWNS) else f"{town} {i // len(TOWNS) + 1}")
    return _Chain(
        names=names,
        region_names=region_names,
        region=region,
        size=size,
        traffic=traffic,
        staff=rng.integers(2, 4, stores).astype(np.int64),
    )


@dataclass
class _Candidates:
    store: I64
    rate: F64
    first: I64  # first active day
    last: I64  # day after the last active day


def _draw_candidates(
    rng: np.random.Generator, segment: _Segment, per_store: I64, n_days: int
) -> _Candidates:
    n = int(per_store.sum())
    store = np.repeat(np.arange(len(per_store), dtype=np.int64), per_store)
    rate = np.minimum(rng.gamma(segment.rate_shape, segment.rate / segment.rate_shape, n), 0.9)
    first = np.where(rng.random(n) < segment.from_start, 0, rng.integers(0, n_days, n))
    life = np.ceil(rng.exponential(segment.lifetime_days, n)).astype(np.int64)
    last = np.minimum(n_days, first + np.maximum(life, 1))
    return _Candidates(store, rate, first.astype(np.int64), last.astype(np.int64))


def _expected_visits(cum_traffic: F64, c: _Candidates) -> F64:
    expected: F64 = c.rate * (cum_traffic[c.store, c.last] - cum_traffic[c.store, c.first])
    return expected


def _regulars(
    rng: np.random.Generator, segment: _Segment, targets: F64, cum_traffic: F64
) -> _Candidates:
    """People of one segment per store whose expected visits add up to `targets`."""
    n_stores, n_days = cum_traffic.shape[0], cum_traffic.shape[1] - 1
    pilot = _draw_candidates(rng, segment, np.full(n_stores, 256, dtype=np.int64), n_days)
    mean = np.bincount(
        pilot.store, weights=_expected_visits(cum_traffic, pilot), minlength=n_stores
    ) / np.maximum(np.bincount(pilot.store, minlength=n_stores), 1)
    needed = np.ceil(1.3 * targets / np.maximum(mean, 1e-9)).astype(np.int64) + 4
    needed = np.where(targets > 0, needed, 0)
    drawn = _draw_candidates(rng, segment, needed, n_days)
    expected = _expected_visits(cum_traffic, drawn)
    running = np.cumsum(expected)
    starts = np.concatenate([[0], np.cumsum(needed)[:-1]]).astype(np.int64)
    before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0.0)
    within = running - np.repeat(before, needed)  # running total within the store
    keep = within <= targets[drawn.store]
    return _Candidates(drawn.store[keep], drawn.rate[keep], drawn.first[keep], drawn.last[keep])


def _demographics(rng: np.random.Generator, n: int) -> tuple[Bools, F64, I64]:
    female = rng.random(n) < FEMALE_SHARE
    weights = np.array([band[2] for band in AGE_BANDS])
    band = rng.choice(len(AGE_BANDS), size=n, p=weights / weights.sum())
    low = np.array([b[0] for b in AGE_BANDS], dtype=np.float64)[band]
    high = np.array([b[1] for b in AGE_BANDS], dtype=np.float64)[band]
    age = low + rng.random(n) * (high - low)
    profile = np.where(age < 25, 2, np.where(age >= 62, 0, 1))
    profile = np.where((profile == 1) & (rng.random(n) < 0.2), 0, profile)  # part-timers
    return female, age, profile.astype(np.int64)


def _age_band(age: F64) -> I64:
    return np.searchsorted(np.array([25.0, 40.0, 60.0]), age, side="right").astype(np.int64)


def _category_table() -> F64:
    """Cumulative category distribution per (demographic group, month): (8 * 12, categories)."""
    rows = []
    for female in (False, True):
        gender = GENDER_PREFERENCES["female" if female else "male"]
        for band in range(4):
            for month in range(1, 13):
                season = SEASONAL_CATEGORIES.get(month, {})
                rows.append(
                    [
                        AGE_PREFERENCES[band][c] * gender.get(name, 1.0) * season.get(name, 1.0)
                        for c, name in enumerate(CATEGORIES)
                    ]
                )
    return _cumulative(np.array(rows, dtype=np.float64))


def _product_table() -> F64:
    """Cumulative product distribution per (demographic group, category): (8 * 12, 5)."""
    rows = []
    for female in (False, True):
        for band in range(4):
            for c in range(len(CATEGORIES)):
                weights = []
                for p in range(PRODUCTS_PER_CATEGORY):
                    sku = CATALOGUE[c * PRODUCTS_PER_CATEGORY + p][0]
                    f, m, young, old = PRODUCT_AFFINITY.get(sku, (1.0, 1.0, 1.0, 1.0))
                    weight = PRODUCT_POPULARITY[p] * (f if female else m)
                    weight *= young if band == 0 else old if band == 3 else 1.0
                    weights.append(weight)
                rows.append(weights)
    return _cumulative(np.array(rows, dtype=np.float64))


def _generate(
    rng: np.random.Generator,
    stores: int,
    calendar: _Calendar,
    receipts: int | None,
    correction: float = 1.0,
) -> _Activity:
    """The chain's activity; `correction` scales the traffic that `receipts` asks for."""
    chain = _chain(rng, stores, calendar)
    n_days = len(calendar.days)
    traffic_total = chain.traffic.sum(axis=1)
    if receipts is None:
        base = VISITORS_PER_DAY
    else:
        base = correction * receipts / max(float(traffic_total.sum()) * BUY_SHARE, 1e-9)
    targets = base * traffic_total  # expected visitors per store over the whole window
    # a person's visits follow their store's days, not its size
    cum_traffic = np.concatenate(
        [np.zeros((stores, 1)), np.cumsum(chain.traffic / chain.size[:, None], axis=1)], axis=1
    )
    day_cum = _cumulative(chain.traffic)  # per store: which day a visit falls on

    # --- people and their visits ------------------------------------------------------
    groups = [_regulars(rng, segment, targets * segment.share, cum_traffic) for segment in SEGMENTS]
    visit_person_parts: list[I64] = []
    visit_day_parts: list[I64] = []
    offset = 0
    person_store_parts: list[I64] = []
    segment_parts: list[I64] = []
    for index, group in enumerate(groups):
        n = len(group.store)
        expected = _expected_visits(cum_traffic, group)
        counts = rng.poisson(expected).astype(np.int64)
        person = np.repeat(np.arange(n, dtype=np.int64), counts)
        store = group.store[person]
        low = cum_traffic[store, group.first[person]]
        high = cum_traffic[store, group.last[person]]
        total = np.maximum(cum_traffic[store, -1], 1e-12)
        u = (low + rng.random(len(person)) * (high - low)) / total
        day = _sample_rows(day_cum, store, u)
        day = np.clip(day, group.first[person], group.last[person] - 1)
        visit_person_parts.append(person + offset)
        visit_day_parts.append(day)
        person_store_parts.append(group.store)
        segment_parts.append(np.full(n, index, dtype=np.int64))
        offset += n
    one_off_counts = rng.poisson(targets * ONE_OFF.share).astype(np.int64)
    one_off_store = np.repeat(np.arange(stores, dtype=np.int64), one_off_counts)
    n_one_off = len(one_off_store)
    visit_person_parts.append(np.arange(n_one_off, dtype=np.int64) + offset)
    visit_day_parts.append(_sample_rows(day_cum, one_off_store, rng.random(n_one_off)))
    person_store_parts.append(one_off_store)
    segment_parts.append(np.full(n_one_off, len(SEGMENTS), dtype=np.int64))
    n_visitors = offset + n_one_off

    # staff: people too, after the visitors
    n_staff = int(chain.staff.sum())
    staff_store = np.repeat(np.arange(stores, dtype=np.int64), chain.staff)
    person_store = np.concatenate([*person_store_parts, staff_store])
    segment = np.concatenate([*segment_parts, np.full(n_staff, -1, dtype=np.int64)])
    n_people = n_visitors + n_staff
    female, age, profile = _demographics(rng, n_people)
    age[n_visitors:] = 19.0 + rng.random(n_staff) * 44.0
    buy_mean = np.array([s.buy for s in (*SEGMENTS, ONE_OFF)] + [0.0])[segment]
    buy = rng.beta(np.maximum(buy_mean * 8.0, 1e-3), np.maximum((1.0 - buy_mean) * 8.0, 1e-3))
    people = _People(
        store=person_store,
        segment=segment,
        buy=buy,
        female=female,
        age=age,
        profile=profile,
        staff=segment < 0,
    )

    visit_person = np.concatenate(visit_person_parts)
    visit_day = np.concatenate(visit_day_parts)
    # one visit a person a day at most
    _, first_of_day = np.unique(visit_person * n_days + visit_day, return_index=True)
    visit_person = visit_person[first_of_day]
    visit_day = visit_day[first_of_day]
    n_visits = len(visit_person)
    visit_store = person_store[visit_person]
    # a few visits go to another store of the region
    region = chain.region
    region_first = np.searchsorted(region, np.arange(region.max() + 1))
    region_size = np.bincount(region)
    home_region = region[visit_store]
    away = (rng.random(n_visits) < CROSS_STORE) & (region_size[home_region] > 1)
    pick = region_first[home_region] + rng.integers(0, np.maximum(region_size[home_region] - 1, 1))
    pick = np.where(pick >= visit_store, pick + 1, pick)
    visit_store = np.where(away, pick, visit_store).astype(np.int64)

    weekend = calendar.weekend[visit_day]
    hour_rows = np.where(
        weekend & (rng.random(n_visits) < WEEKEND_HOURS_SHARE), 3, profile[visit_person]
    )
    hour = OPEN_HOUR + _sample_rows(
        _cumulative(np.array(HOUR_PROFILES, dtype=np.float64)),
        hour_rows.astype(np.int64),
        rng.random(n_visits),
    )
    entered = calendar.start[visit_day] + hour * 3600 + rng.integers(0, 3600, n_visits)
    buys = rng.random(n_visits) < buy[visit_person]
    dwell = np.rint(rng.lognormal(math.log(11 * 60), 0.45, n_visits)).astype(np.int64)
    closing = calendar.start[visit_day] + CLOSE_HOUR * 3600 + 15 * 60
    paid = np.minimum(entered + 60 + dwell, closing)

    # staff: before opening on most days, again after lunch, sometimes a purchase
    open_days = np.flatnonzero(calendar.factor > 0)
    works = rng.random((n_staff, len(open_days))) < STAFF_WORKDAY
    staff_idx, work_day_idx = np.nonzero(works)
    work_day = open_days[work_day_idx]
    staff_person = (n_visitors + staff_idx).astype(np.int64)
    n_work = len(staff_person)
    arrive = calendar.start[work_day] + 7 * 3600 + 1800 + rng.integers(0, 2400, n_work)
    lunch = rng.random(n_work) < STAFF_LUNCH_RETURN
    back = calendar.start[work_day] + 12 * 3600 + 1800 + rng.integers(0, 5400, n_work)
    shops = rng.random(n_work) < STAFF_PURCHASE
    shop_at = calendar.start[work_day] + np.where(
        rng.random(n_work) < 0.5,
        12 * 3600 + 900 + rng.integers(0, 5400, n_work),
        17 * 3600 + rng.integers(0, 12600, n_work),
    )

    # --- sightings and receipts (before identification) ------------------------------
    s_person = np.concatenate([visit_person, staff_person, staff_person[lunch]])
    s_store = np.concatenate(
        [visit_store, person_store[staff_person], person_store[staff_person[lunch]]]
    )
    s_at = np.concatenate([entered, arrive, back[lunch]])
    r_person = np.concatenate([visit_person[buys], staff_person[shops]])
    r_store = np.concatenate([visit_store[buys], person_store[staff_person[shops]]])
    r_at = np.concatenate([paid[buys], shop_at[shops]])
    r_weekend = calendar.weekend[np.concatenate([visit_day[buys], work_day[shops]])]
    r_captured = rng.random(len(r_person)) < CHECKOUT_CAPTURE
    r_captured[len(r_person) - int(shops.sum()) :] = (
        rng.random(int(shops.sum())) < STAFF_RECOGNITION
    )

    # --- who becomes a customer, and when ---------------------------------------------
    window_start = int(calendar.start[0])
    window_end = int(calendar.start[-1]) + 86_400
    is_staff_r = people.staff[r_person]
    enrolling = np.flatnonzero(r_captured & ~is_staff_r)
    order = enrolling[np.lexsort((r_at[enrolling], r_person[enrolling]))]
    _, first_index = np.unique(r_person[order], return_index=True)
    first_receipt = order[first_index]
    enrolled_at = np.full(n_people, np.iinfo(np.int64).max, dtype=np.int64)
    first_store = np.full(n_people, -1, dtype=np.int64)
    enrolled_at[r_person[first_receipt]] = r_at[first_receipt]
    first_store[r_person[first_receipt]] = r_store[first_receipt]
    staff_ids = np.arange(n_visitors, n_people, dtype=np.int64)
    enrolled_at[staff_ids] = window_start - 86_400 + 18 * 3600  # the evening before
    first_store[staff_ids] = person_store[staff_ids]
    customer_person = np.flatnonzero(first_store >= 0)
    # ids in the order the service would have created them: staff first, then by time
    customer_person = customer_person[np.lexsort((customer_person, enrolled_at[customer_person]))]
    n_customers = len(customer_person)
    customer_of = np.full(n_people, -1, dtype=np.int64)
    customer_of[customer_person] = np.arange(n_customers, dtype=np.int64)

    # members: consent at the till or a few weeks later
    member_p = np.array([s.member for s in (*SEGMENTS, ONE_OFF)] + [0.0])[segment[customer_person]]
    created = enrolled_at[customer_person]
    consent = created + np.where(
        rng.random(n_customers) < 0.4,
        0,
        np.rint(rng.exponential(25 * 86_400, n_customers)).astype(np.int64),
    )
    is_member = (rng.random(n_customers) < member_p) & (consent < window_end)
    consent_at = np.where(is_member, consent, -1).astype(np.int64)

    # identification
    s_staff = people.staff[s_person]
    recognised = np.where(
        s_staff,
        rng.random(len(s_person)) < STAFF_RECOGNITION,
        (enrolled_at[s_person] < s_at) & (rng.random(len(s_person)) < ENTRANCE_RECOGNITION),
    )
    s_customer = np.where(recognised, customer_of[s_person], -1)
    s_consent = np.where(s_customer >= 0, consent_at[np.maximum(s_customer, 0)], -1)
    s_vip = (s_customer >= 0) & (s_consent >= 0) & (s_consent <= s_at)
    r_customer = np.where(r_captured, customer_of[r_person], -1)

    # time order: ids follow it, as they would in a live database
    s_order = np.lexsort((s_store, s_at))
    r_order = np.lexsort((r_store, r_at))
    r_person, r_store, r_at = r_person[r_order], r_store[r_order], r_at[r_order]
    r_customer, r_weekend = r_customer[r_order], r_weekend[r_order]
    n_receipts = len(r_person)

    # --- line items ---------------------------------------------------------------------
    r_age = people.age[r_person]
    p_items = 0.34 + 0.07 * r_weekend + 0.05 * ((r_age >= 30) & (r_age < 55))
    n_items = 1 + rng.binomial(5, np.where(people.staff[r_person], 0.08, p_items))
    item_receipt = np.repeat(np.arange(n_receipts, dtype=np.int64), n_items)
    item_person = r_person[item_receipt]
    group = people.female[item_person].astype(np.int64) * 4 + _age_band(people.age[item_person])
    month = calendar.month[(r_at[item_receipt] - window_start) // 86_400]
    category = _sample_rows(
        _category_table(), group * 12 + (month - 1), rng.random(len(item_receipt))
    )
    local = _sample_rows(
        _product_table(), group * len(CATEGORIES) + category, rng.random(len(item_receipt))
    )
    product = category * PRODUCTS_PER_CATEGORY + local
    # a product once per receipt
    _, keep = np.unique(item_receipt * len(CATALOGUE) + product, return_index=True)
    item_receipt, product = item_receipt[keep], product[keep]
    n_lines = len(item_receipt)
    quantity = 1 + _sample_rows(
        _cumulative(np.array([[0.80, 0.15, 0.05]])),
        np.zeros(n_lines, dtype=np.int64),
        rng.random(n_lines),
    )
    price = np.array([round(float(p[4]) * 100) for p in CATALOGUE], dtype=np.int64)[product]
    price = np.where(rng.random(n_lines) < PROMOTION, np.rint(price * 0.8), price).astype(np.int64)
    total = np.zeros(n_receipts, dtype=np.int64)
    np.add.at(total, item_receipt, quantity * price)

    # --- visits and the customers' running figures -------------------------------------
    s_store, s_at = s_store[s_order], s_at[s_order]
    s_customer, s_vip = s_customer[s_order], s_vip[s_order]
    entrance = np.flatnonzero(s_customer >= 0)
    checkout = np.flatnonzero(r_customer >= 0)
    v_customer = np.concatenate([s_customer[entrance], r_customer[checkout]])
    v_store = np.concatenate([s_store[entrance], r_store[checkout]])
    v_checkout = np.concatenate(
        [np.zeros(len(entrance), dtype=np.bool_), np.ones(len(checkout), dtype=np.bool_)]
    )
    v_receipt = np.concatenate([np.full(len(entrance), -1, dtype=np.int64), checkout])
    v_at = np.concatenate([s_at[entrance], r_at[checkout]])
    v_order = np.lexsort((v_checkout, v_at))

    return _Activity(
        chain=chain,
        people=people,
        customer_of=customer_of,
        customer_person=customer_person,
        customer_created=created,
        customer_first_store=first_store[customer_person],
        consent_at=consent_at,
        sighting_store=s_store,
        sighting_at=s_at,
        sighting_customer=s_customer,
        sighting_vip=s_vip,
        receipt_store=r_store,
        receipt_at=r_at,
        receipt_customer=r_customer,
        receipt_total=total,
        item_receipt=item_receipt,
        item_product=product,
        item_quantity=quantity,
        item_price=price,
        visit_customer=v_customer[v_order],
        visit_store=v_store[v_order],
        visit_checkout=v_checkout[v_order],
        visit_receipt=v_receipt[v_order],
        visit_at=v_at[v_order],
    )


# --- writing ---------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTIVITY = (Customer, Sighting, Receipt, Visit)
_BULK = (Customer, Receipt, LineItem, Sighting, Visit)
_SEQUENCED = (Region, Store, Device, Product, Customer, Receipt, LineItem, Sighting, Visit)

Columns = Callable[[int, int], Sequence[list[Any]]]


class _Format:
    """Python values for one backend: strings COPY parses on PostgreSQL, typed values for Core."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def ts(self, seconds: I64) -> list[Any]:
        if self.postgres:
            text_values = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
            return [f"{value}+00" for value in text_values.tolist()]
        return [_EPOCH + timedelta(seconds=value) for value in seconds.tolist()]

    def optional_ts(self, seconds: I64) -> list[Any]:
        values = self.ts(np.maximum(seconds, 0))
        return [None if s < 0 else v for s, v in zip(seconds.tolist(), values, strict=True)]

    def money(self, cents: I64) -> list[Any]:
        if self.postgres:
            return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]
        return [Decimal(c).scaleb(-2) for c in cents.tolist()]

    @staticmethod
    def optional_id(ids: I64, offset: int) -> list[Any]:
        return [None if i < 0 else i + offset for i in ids.tolist()]

    @staticmethod
    def ids(ids: I64, offset: int) -> list[Any]:
        return list((ids + offset).tolist())

    def empty_json(self, n: int) -> list[Any]:
        return ["{}"] * n if self.postgres else [{}] * n


class _Writer:
    """Bulk rows into one table: COPY on PostgreSQL, executemany batches elsewhere."""

    def __init__(self, connection: Connection, postgres: bool, bar: tqdm[Any]) -> None:
        self.connection = connection
        self.postgres = postgres
        self.bar = bar
        self.written: dict[str, int] = {}

    def write(self, table: Table, names: Sequence[str], n: int, columns: Columns) -> None:
        self.written[table.name] = self.written.get(table.name, 0) + n
        if n == 0:
            return
        self.bar.set_description(f"seeding {table.name}")
        started = time.perf_counter()
        self._rows(table, names, n, columns)
        log.info(
            "seed_table_written",
            table=table.name,
            rows=n,
            seconds=round(time.perf_counter() - started, 2),
        )

    def _rows(self, table: Table, names: Sequence[str], n: int, columns: Columns) -> None:
        if self.postgres:
            raw = cast(Any, self.connection.connection.driver_connection)
            statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for start in range(0, n, BATCH_ROWS):
                    stop = min(n, start + BATCH_ROWS)
                    for row in zip(*columns(start, stop), strict=True):
                        copy.write_row(row)
                    self.bar.update(stop - start)
            return
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            rows = [
                dict(zip(names, row, strict=True))
                for row in zip(*columns(start, stop), strict=True)
            ]
            self.connection.execute(insert(table), rows)
            self.bar.update(stop - start)


def _next_id(connection: Connection, table: Table, postgres: bool) -> int:
    """The first id never used in `table`: past its rows and past deleted rows' ids."""
    top = int(connection.scalar(select(func.max(table.c.id))) or 0)
    if postgres:
        sequence = connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
        )
        if sequence:
            last, called = connection.execute(
                text(f"SELECT last_value, is_called FROM {sequence}")
            ).one()
            top = max(top, int(last) if called else int(last) - 1)
    else:
        used = connection.scalar(
            text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table.name}
        )
        top = max(top, int(used or 0))
    return top + 1


@contextmanager
def _bulk_load(connection: Connection, tables: Sequence[str]) -> Iterator[None]:
    """PostgreSQL: load the (empty) `tables` without their foreign keys and secondary indexes.

    Checking a foreign key row by row locks the parent row for each child, and indexes grow
    one entry at a time: several times slower than COPY itself. Both are dropped here and
    recreated, from their own definitions in the catalogue, after the rows are in: one
    validating join per foreign key, one sort per index. All in the seed's transaction, so
    an error leaves the schema as it was.
    """
    foreign_keys = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY 1, 2"
        ),
        {"tables": list(tables)},
    ).all()
    indexes = connection.execute(
        text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i WHERE i.indrelid = ANY(CAST(:tables AS regclass[])) "
            "AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY 1"
        ),
        {"tables": list(tables)},
    ).all()
    for table, name, _ in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        connection.execute(text(f"DROP INDEX {name}"))
    yield
    started = time.perf_counter()
    connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for _, definition in indexes:
        connection.execute(text(definition))
    for table, name, definition in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    log.info(
        "seed_constraints_restored",
        foreign_keys=len(foreign_keys),
        indexes=len(indexes),
        seconds=round(time.perf_counter() - started, 2),
    )


def _refuse_activity(connection: Connection, url: str) -> None:
    found = {
        model.__tablename__: int(
            connection.scalar(select(func.count()).select_from(model.__table__)) or 0
        )
        for model in _ACTIVITY
    }
    held = [f"{count} {name}" for name, count in found.items() if count]
    if held:
        raise SeedError(
            f"database {display_url(url)} already holds {', '.join(held)}; "
            "seed only adds to a database without customers or activity (use a new database)"
        )


def _unused(names: Sequence[str], taken: set[str]) -> list[str]:
    chosen: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name} ({n})"
        taken.add(candidate)
        chosen.append(candidate)
    return chosen


def _store_codes(count: int, taken: set[str]) -> list[str]:
    codes: list[str] = []
    number = 0
    while len(codes) < count:
        number += 1
        code = f"S{number:03d}"
        if code not in taken:
            codes.append(code)
    return codes


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _write(
    connection: Connection,
    activity: _Activity,
    calendar: _Calendar,
    seed: int,
    postgres: bool,
    bar: tqdm[Any],
) -> SeedSummary:
    fmt = _Format(postgres)
    writer = _Writer(connection, postgres, bar)
    rng = np.random.default_rng([seed, 1])  # observation noise and names
    chain, people = activity.chain, activity.people
    n_stores = len(chain.names)
    setup_at = int(calendar.start[0]) - 30 * 86_400  # the chain was set up a month before

    def start_of(model: type[Any]) -> int:
        return _next_id(connection, _table(model), postgres)

    # regions, stores, devices, products
    region_names = _unused(chain.region_names, set(connection.scalars(select(Region.name))))
    region_start = start_of(Region)
    n_regions = len(region_names)
    writer.write(
        _table(Region),
        ["id", "name", "created_at"],
        n_regions,
        lambda a, b: [
            list(range(region_start + a, region_start + b)),
            region_names[a:b],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    codes = _store_codes(n_stores, set(connection.scalars(select(Store.code))))
    store_start = start_of(Store)
    store_ids = np.arange(n_stores, dtype=np.int64) + store_start
    writer.write(
        _table(Store),
        ["id", "region_id", "code", "name", "created_at"],
        n_stores,
        lambda a, b: [
            store_ids[a:b].tolist(),
            fmt.ids(chain.region[a:b], region_start),
            codes[a:b],
            [f"{code} {name}" for code, name in zip(codes[a:b], chain.names[a:b], strict=True)],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    device_start = start_of(Device)
    till_ids = device_start + 2 * np.arange(n_stores, dtype=np.int64)
    entrance_ids = till_ids + 1
    keys = [new_api_key() for _ in range(2 * n_stores)]  # nobody signs in with these
    writer.write(
        _table(Device),
        ["id", "store_id", "kind", "name", "key_prefix", "key_hash", "created_at"],
        2 * n_stores,
        lambda a, b: [
            list(range(device_start + a, device_start + b)),
            [int(store_ids[i // 2]) for i in range(a, b)],
            ["till" if i % 2 == 0 else "entrance" for i in range(a, b)],
            ["Till 1" if i % 2 == 0 else "Entrance" for i in range(a, b)],
            [key[1] for key in keys[a:b]],
            [key[2] for key in keys[a:b]],
            fmt.ts(np.full(b - a, setup_at, dtype=np.int64)),
        ],
    )
    known_skus = set(connection.scalars(select(Product.sku)))
    new_products = [p for p in CATALOGUE if p[0] not in known_skus]
    bar.total -= len(CATALOGUE) - len(new_products)  # products the catalogue already has
    product_start = start_of(Product)
    writer.write(
        _table(Product),
        ["id", "sku", "name", "category", "brand", "price", "active"],
        len(new_products),
        lambda a, b: [
            list(range(product_start + a, product_start + b)),
            *[list(values) for values in zip(*new_products[a:b], strict=True)][:4],
            fmt.money(
                np.array([round(float(p[4]) * 100) for p in new_products[a:b]], dtype=np.int64)
            ),
            [True] * (b - a),
        ],
    )

    # customers, with the figures the service keeps up to date
    n_customers = len(activity.customer_person)
    customer_start = start_of(Customer)
    person = activity.customer_person
    checkout = activity.visit_checkout
    visit_count = np.bincount(activity.visit_customer[checkout], minlength=n_customers)
    identified = activity.receipt_customer >= 0
    spend = np.zeros(n_customers, dtype=np.int64)
    np.add.at(spend, activity.receipt_customer[identified], activity.receipt_total[identified])
    last_seen = activity.customer_created.copy()
    np.maximum.at(last_seen, activity.visit_customer, activity.visit_at)
    female = people.female[person] ^ (rng.random(n_customers) < GENDER_MISREAD)
    age = np.round(
        np.clip(people.age[person] + rng.normal(0, AGE_ERROR_YEARS, n_customers), 16, 85), 1
    )
    members = np.flatnonzero(activity.consent_at >= 0)
    members = members[np.lexsort((members, activity.consent_at[members]))]
    vip_number: list[str | None] = [None] * n_customers
    member_name: list[str | None] = [None] * n_customers
    level: list[str | None] = [None] * n_customers
    spend_rank = np.empty(len(members), dtype=np.float64)
    spend_rank[np.argsort(-spend[members], kind="stable")] = np.arange(len(members)) / max(
        len(members), 1
    )
    firsts = rng.integers(0, len(FIRST_NAMES["female"]), len(members))
    lasts = rng.integers(0, len(LAST_NAMES), len(members))
    for k, customer in enumerate(members.tolist()):
        vip_number[customer] = f"VIP-{k + 1:06d}"
        gender = "female" if female[customer] else "male"
        member_name[customer] = f"{FIRST_NAMES[gender][firsts[k]]} {LAST_NAMES[lasts[k]]}"
        rank = spend_rank[k]
        level[customer] = (
            MEMBER_LEVELS[2]
            if rank < 0.1
            else MEMBER_LEVELS[1]
            if rank < 0.35
            else MEMBER_LEVELS[0]
        )
    store_region = chain.region
    first_store = activity.customer_first_store
    staff = people.staff[person]
    writer.write(
        _table(Customer),
        [
            "id",
            "region_id",
            "first_store_id",
            "vip_number",
            "name",
            "level",
            "consent_at",
            "gender",
            "age_years",
            "visit_count",
            "lifetime_spend",
            "is_staff",
            "created_at",
            "last_seen_at",
        ],  # fmt: skip
        n_customers,
        lambda a, b: [
            list(range(customer_start + a, customer_start + b)),
            fmt.ids(store_region[first_store[a:b]], region_start),
            fmt.ids(first_store[a:b], store_start),
            vip_number[a:b],
            member_name[a:b],
            level[a:b],
            fmt.optional_ts(activity.consent_at[a:b]),
            ["female" if f else "male" for f in female[a:b].tolist()],
            age[a:b].tolist(),
            visit_count[a:b].tolist(),
            fmt.money(spend[a:b]),
            staff[a:b].tolist(),
            fmt.ts(activity.customer_created[a:b]),
            fmt.ts(last_seen[a:b]),
        ],
    )

    # receipts and their items
    n_receipts = len(activity.receipt_at)
    receipt_start = start_of(Receipt)
    r_store = activity.receipt_store
    per_store = np.bincount(r_store, minlength=n_stores)
    by_store = np.argsort(r_store, kind="stable")
    number = np.empty(n_receipts, dtype=np.int64)
    number[by_store] = np.arange(n_receipts) - np.repeat(
        np.cumsum(per_store) - per_store, per_store
    )
    delay = rng.integers(1, 5, n_receipts)
    writer.write(
        _table(Receipt),
        [
            "id",
            "store_id",
            "device_id",
            "customer_id",
            "idempotency_key",
            "number",
            "currency",
            "total",
            "scanned_at",
            "created_at",
            "response",
        ],  # fmt: skip
        n_receipts,
        lambda a, b: [
            list(range(receipt_start + a, receipt_start + b)),
            fmt.ids(r_store[a:b], store_start),
            till_ids[r_store[a:b]].tolist(),
            fmt.optional_id(activity.receipt_customer[a:b], customer_start),
            [f"seed-{seed}-{i}" for i in range(receipt_start + a, receipt_start + b)],
            [
                f"{codes[s]}-{n + 1:07d}"
                for s, n in zip(r_store[a:b].tolist(), number[a:b].tolist(), strict=True)
            ],
            [CURRENCY] * (b - a),
            fmt.money(activity.receipt_total[a:b]),
            fmt.ts(activity.receipt_at[a:b]),
            fmt.ts(activity.receipt_at[a:b] + delay[a:b]),
            fmt.empty_json(b - a),
        ],
    )
    catalogue = np.array(CATALOGUE, dtype=object)
    item_receipt = activity.item_receipt
    n_lines = len(item_receipt)
    line_start = start_of(LineItem)
    writer.write(
        _table(LineItem),
        [
            "id",
            "receipt_id",
            "sku",
            "name",
            "category",
            "brand",
            "quantity",
            "unit_price",
            "store_id",
            "sold_at",
            "customer_id",
        ],  # fmt: skip
        n_lines,
        lambda a, b: [
            list(range(line_start + a, line_start + b)),
            fmt.ids(item_receipt[a:b], receipt_start),
            *[catalogue[activity.item_product[a:b], c].tolist() for c in range(4)],
            activity.item_quantity[a:b].tolist(),
            fmt.money(activity.item_price[a:b]),
            fmt.ids(r_store[item_receipt[a:b]], store_start),
            fmt.ts(activity.receipt_at[item_receipt[a:b]]),
            fmt.optional_id(activity.receipt_customer[item_receipt[a:b]], customer_start),
        ],
    )

    # entrance sightings, then visits
    s_store = activity.sighting_store
    sighting_start = start_of(Sighting)
    writer.write(
        _table(Sighting),
        ["id", "store_id", "device_id", "customer_id", "is_vip", "at"],
        len(s_store),
        lambda a, b: [
            list(range(sighting_start + a, sighting_start + b)),
            fmt.ids(s_store[a:b], store_start),
            entrance_ids[s_store[a:b]].tolist(),
            fmt.optional_id(activity.sighting_customer[a:b], customer_start),
            activity.sighting_vip[a:b].tolist(),
            fmt.ts(activity.sighting_at[a:b]),
        ],
    )
    v_store = activity.visit_store
    visit_start = start_of(Visit)
    writer.write(
        _table(Visit),
        ["id", "customer_id", "store_id", "device_id", "kind", "receipt_id", "at"],
        len(v_store),
        lambda a, b: [
            list(range(visit_start + a, visit_start + b)),
            fmt.ids(activity.visit_customer[a:b], customer_start),
            fmt.ids(v_store[a:b], store_start),
            np.where(checkout[a:b], till_ids[v_store[a:b]], entrance_ids[v_store[a:b]]).tolist(),
            ["checkout" if c else "entrance" for c in checkout[a:b].tolist()],
            fmt.optional_id(activity.visit_receipt[a:b], receipt_start),
            fmt.ts(activity.visit_at[a:b]),
        ],
    )

    if postgres:  # explicit ids: move the sequences past them
        for model in _SEQUENCED:
            name = model.__tablename__
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) "
                    f"FROM {name} HAVING max(id) IS NOT NULL"
                )
            )
    written = writer.written
    return SeedSummary(
        regions=n_regions,
        stores=n_stores,
        devices=2 * n_stores,
        products=len(new_products),
        customers=n_customers,
        staff=int(staff.sum()),
        members=len(members),
        sightings=written["sightings"],
        receipts=written["receipts"],
        line_items=written["line_items"],
        visits=written["visits"],
        first_day=calendar.days[0],
        last_day=calendar.days[-1],
    )


def _total_rows(activity: _Activity, n_regions: int) -> int:
    n_stores = len(activity.chain.names)
    return (
        n_regions
        + 3 * n_stores
        + len(CATALOGUE)
        + len(activity.customer_person)
        + len(activity.receipt_at)
        + len(activity.item_receipt)
        + len(activity.sighting_at)
        + len(activity.visit_at)
    )


def check_arguments(stores: int, days: int, receipts: int | None, seed: int) -> None:
    """Raise SeedError for arguments `seed` refuses (also what the CLI checks)."""
    if not 1 <= stores <= MAX_STORES:
        raise SeedError(f"stores must be between 1 and {MAX_STORES}, not {stores}")
    if not 1 <= days <= MAX_DAYS:
        raise SeedError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    if receipts is not None and not 1 <= receipts <= MAX_RECEIPTS:
        raise SeedError(f"receipts must be between 1 and {MAX_RECEIPTS}, not {receipts}")
    if seed < 0:
        raise SeedError(f"seed must not be negative, not {seed}")


def seed(
    url: str,
    *,
    stores: int,
    days: int,
    end: date | None = None,
    receipts: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SeedSummary:
    """Add `stores` stores with `days` days of activity ending `end` (default today, UTC).

    The database must be migrated (SchemaNotCurrent otherwise) and hold no customers,
    sightings, receipts or visits (SeedError otherwise); regions, stores, devices, products
    and users already there stay, and new names and codes avoid theirs. `receipts` scales
    traffic to about that many receipts. The same arguments and `seed` give the same data.
    Everything is written in one transaction: on any error nothing is added.
    """
    from cloud_api.db.migrate import ensure_current, is_sqlite

    check_arguments(stores, days, receipts, seed)
    end = end if end is not None else datetime.now(UTC).date()
    shown = display_url(url)
    ensure_current(url)
    started = time.perf_counter()
    log.info(
        "seed_started",
        database=shown,
        stores=stores,
        days=days,
        end=end.isoformat(),
        receipts=receipts,
        seed=seed,
    )
    postgres = not is_sqlite(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:  # before minutes of work, not only after
            _refuse_activity(connection, url)
        calendar = _calendar(end, days)
        activity = _generate(np.random.default_rng(seed), stores, calendar, receipts)
        if receipts is not None and len(activity.receipt_at) > 0:
            # one visit a day at most, staff purchases, rounding: aim again, same seed
            correction = receipts / len(activity.receipt_at)
            activity = _generate(
                np.random.default_rng(seed), stores, calendar, receipts, correction
            )
        log.info(
            "seed_generated",
            receipts=len(activity.receipt_at),
            line_items=len(activity.item_receipt),
            sightings=len(activity.sighting_at),
            seconds=round(time.perf_counter() - started, 2),
        )
        total = _total_rows(activity, len(activity.chain.region_names))
        with (
            tqdm(
                total=total,
                unit="rows",
                unit_scale=True,
                desc="seeding",
                disable=not progress,
                file=sys.stderr,
            ) as bar,
            engine.begin() as connection,
        ):
            _refuse_activity(connection, url)
            loading = (
                _bulk_load(connection, [m.__tablename__ for m in _BULK])
                if postgres
                else nullcontext()
            )
            with loading:
                summary = _write(connection, activity, calendar, seed, postgres, bar)
                bar.set_description("seeded; indexing" if postgres else "seeded; committing")
        with engine.begin() as connection:  # planner statistics for the new rows
            connection.execute(text("ANALYZE"))
        from sqlalchemy.orm import Session

        from cloud_api.reports import rollups

        with Session(engine) as session, session.begin():  # the reports' rollups, at once
            rollups.rebuild(session)
        if postgres:
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    log.info(
        "seed_finished",
        database=shown,
        seconds=round(time.perf_counter() - started, 1),
        **{name: count for name, count in summary.rows() if not name.startswith(" ")},
    )
    return summary
