"""The synthetic activity, in memory: calendar, chain, people, their visits, sightings,
receipts and line items (`_generate`), all drawn from one `numpy` generator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from cloud_api.seed.catalogue import (
    AGE_PREFERENCES,
    BUY_SHARE,
    CATALOGUE,
    CATEGORIES,
    CHECKOUT_CAPTURE,
    CLOSE_HOUR,
    CLOSED,
    CROSS_STORE,
    ENTRANCE_RECOGNITION,
    FEMALE_SHARE,
    GENDER_PREFERENCES,
    HOUR_PROFILES,
    ONE_OFF,
    OPEN_HOUR,
    PRODUCT_AFFINITY,
    PRODUCT_POPULARITY,
    PRODUCTS_PER_CATEGORY,
    PROMOTION,
    REGION_NAMES,
    SEASONAL_CATEGORIES,
    SEGMENTS,
    SHOPPER_AGE_MIX,
    STAFF_LUNCH_RETURN,
    STAFF_PURCHASE,
    STAFF_RECOGNITION,
    STAFF_WORKDAY,
    TOWNS,
    VISITORS_PER_DAY,
    WEEKDAY_FACTOR,
    WEEKEND_HOURS_SHARE,
    _Segment,
)

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]
Objects = NDArray[np.object_]


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
    weights = np.array([band[2] for band in SHOPPER_AGE_MIX])
    band = rng.choice(len(SHOPPER_AGE_MIX), size=n, p=weights / weights.sum())
    low = np.array([b[0] for b in SHOPPER_AGE_MIX], dtype=np.float64)[band]
    high = np.array([b[1] for b in SHOPPER_AGE_MIX], dtype=np.float64)[band]
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
