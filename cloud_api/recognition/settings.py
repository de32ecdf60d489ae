"""Engine settings: strict, bounded, with defaults chosen by `bench/recognition.py`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EngineSettings(BaseModel):
    """How the recognition engine partitions, indexes and searches descriptors.

    The defaults come from `python bench/recognition.py`: on 1M synthetic dlib-like
    descriptors in 100 stores they answer in 0.7 ms (p50) / 2.0 ms (p99) on one core and
    decide as exact search does for 99.95% of queries. `search_k` is the knob to turn first
    if real descriptors prove harder for Annoy than synthetic ones.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dim: int = Field(128, ge=2, le=4096, description="descriptor length (dlib: 128)")
    n_trees: int = Field(
        20,
        ge=1,
        le=512,
        description="random-projection trees per Annoy index: more trees, better recall, "
        "bigger files and longer builds (1M samples: 20 trees, 763 MB, 36 s on 2 cores)",
    )
    search_k: int = Field(
        3000,
        ge=1,
        description="Annoy nodes inspected per query (its search_k): the recall/latency knob "
        "(1M samples, 20 trees: 1000 -> 0.3 ms, 3000 -> 0.8 ms, 10000 -> 2.6 ms per search)",
    )
    candidates: int = Field(
        10,
        ge=1,
        le=1000,
        description="nearest neighbours asked of an Annoy index per query; asked again with "
        "more when every one below the threshold belongs to a removed customer",
    )
    exact_max_size: int = Field(
        10_000,
        ge=0,
        description="a partition with at most this many samples is searched exactly (numpy) "
        "instead of through an Annoy index: up to about this size exact search is as fast "
        "(10k: 0.56 ms against 0.54 ms; 20k: 1.03 against 0.60), never misses and needs no "
        "index build",
    )
    rebuild_buffer_limit: int = Field(
        20_000,
        ge=1,
        description="samples waiting in one partition's exact buffer (added since the last "
        "rebuild) above which `rebuild_due()` says to rebuild; the buffer is searched exactly "
        "by every query reaching the partition (20k: about 1 ms more)",
    )
    region_level: Literal["filter", "index", "off"] = Field(
        "filter",
        description="how the region level is searched: 'filter' takes the global index's "
        "candidates in the query's region first (one search serves both levels); 'index' "
        "keeps a separate index per region, searched before the global one; 'off' widens "
        "from the store straight to everyone",
    )
    build_jobs: int = Field(
        1,
        ge=-1,
        le=256,
        description="threads Annoy builds each index with (-1: every core); the default leaves "
        "the other cores to queries while a rebuild runs",
    )

    @field_validator("build_jobs")
    @classmethod
    def _jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("build_jobs must be a number of threads >= 1, or -1 for every core")
        return value

    seed: int = Field(42, ge=0, le=2**31 - 1, description="Annoy's random seed (reproducible)")
    prefault: bool = Field(
        False,
        description="read whole index files (an index version's arrays too) into memory when "
        "loading them instead of paging them in on demand",
    )
