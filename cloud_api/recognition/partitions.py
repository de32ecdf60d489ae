"""What a sample is filed under, and which samples a query looks at first.

Every sample belongs to one store, every store to one region. The engine widens a search
through four levels, narrowest first, and stops at the first level where some sample is closer
than the threshold:

``store+gender+age``
    The query's store, among samples whose recorded gender and age band agree with the
    query's estimates. Estimates are noisy (gender wrong ~10% of the time, age off by one band
    ~30%), so "agree" is loose: the same gender or an unknown one, and the same age band, an
    adjacent one or an unknown one. An unknown gender or age band in the query matches all.
``store``
    Every sample enrolled at the query's store.
``region``
    Every sample enrolled in the query's region: by default those of the global search's
    candidates (`EngineSettings.region_level`), or a separate index per region.
``global``
    Every sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
from numpy.typing import NDArray

Gender = Literal["female", "male", "unknown"]
GENDERS: Final[tuple[Gender, ...]] = get_args(Gender)
UNKNOWN_GENDER: Final = GENDERS.index("unknown")

Level = Literal["store+gender+age", "store", "region", "global"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)

#: Inclusive age ranges in years; band i is PARTITION_AGE_BANDS[i]; the last one is open-ended.
PARTITION_AGE_BANDS: Final[tuple[tuple[int, int | None], ...]] = (
    (0, 17),
    (18, 29),
    (30, 44),
    (45, 59),
    (60, None),
)
UNKNOWN_AGE_BAND: Final = -1
_MAX_ID: Final = 2**63 - 1


def age_band(years: float | None) -> int:
    """The age band of an age in years (see PARTITION_AGE_BANDS); -1 when the age is unknown
    (None/NaN)."""
    if years is None or (isinstance(years, float) and math.isnan(years)):
        return UNKNOWN_AGE_BAND
    if not isinstance(years, int | float) or isinstance(years, bool):
        raise ValueError(f"age must be a number of years, got {type(years).__name__}")
    if years < 0 or math.isinf(years):
        raise ValueError(f"age must be a finite number of years >= 0, got {years}")
    for band, (_, high) in enumerate(PARTITION_AGE_BANDS):
        if high is None or years < high + 1:
            return band
    raise AssertionError("unreachable: the last band is open-ended")


def gender_code(gender: object) -> int:
    """The small integer the engine stores for a gender label; ValueError for anything else."""
    if not isinstance(gender, str) or gender not in GENDERS:
        raise ValueError(f"gender must be one of {', '.join(GENDERS)}; got {gender!r}")
    return GENDERS.index(gender)


def check_age_band(band: object) -> int:
    """`band` itself when it is a valid age band (-1 for unknown); ValueError otherwise."""
    if not isinstance(band, int | np.integer) or isinstance(band, bool):
        raise ValueError(f"age_band must be an int, got {type(band).__name__}")
    if not UNKNOWN_AGE_BAND <= band < len(PARTITION_AGE_BANDS):
        raise ValueError(
            f"age_band must be -1 (unknown) or 0..{len(PARTITION_AGE_BANDS) - 1} "
            f"(see age_band()); got {band}"
        )
    return int(band)


def check_id(name: str, value: object) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _MAX_ID:
        raise ValueError(f"{name} must be between 0 and 2**63 - 1, got {value}")
    return int(value)


@dataclass(frozen=True, slots=True)
class SampleMeta:
    """Where and about whom one descriptor was taken; gender and age band are estimates."""

    customer_id: int
    region_id: int
    store_id: int
    gender: Gender
    age_band: int

    def __post_init__(self) -> None:
        check_id("customer_id", self.customer_id)
        check_id("region_id", self.region_id)
        check_id("store_id", self.store_id)
        gender_code(self.gender)
        check_age_band(self.age_band)


@dataclass(frozen=True, slots=True)
class Match:
    """The customer recognised, how close their nearest sample is, and the level that found it."""

    customer_id: int
    distance: float
    sample_id: int
    level: Level


class NarrowFilter:
    """Which recorded (gender, age band) pairs fall into a query's narrowest partition.

    Lookup tables indexed by the stored codes, so a whole candidate set is filtered in one
    numpy expression.
    """

    __slots__ = ("_genders", "_bands")

    def __init__(self, gender: int, band: int) -> None:
        genders = np.ones(len(GENDERS), dtype=bool)
        if gender != UNKNOWN_GENDER:
            genders[:] = False
            genders[[gender, UNKNOWN_GENDER]] = True
        # Index band + 1, so the unknown band (-1) is entry 0.
        bands = np.ones(len(PARTITION_AGE_BANDS) + 1, dtype=bool)
        if band != UNKNOWN_AGE_BAND:
            bands[:] = False
            bands[0] = True
            for near in (band - 1, band, band + 1):
                if 0 <= near < len(PARTITION_AGE_BANDS):
                    bands[near + 1] = True
        self._genders = genders
        self._bands = bands

    def allows(self, genders: NDArray[np.int8], bands: NDArray[np.int8]) -> NDArray[np.bool_]:
        ok: NDArray[np.bool_] = self._genders[genders] & self._bands[bands.astype(np.intp) + 1]
        return ok
