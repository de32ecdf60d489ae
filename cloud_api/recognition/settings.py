"""Engine settings: strict, bounded, with defaults chosen by `bench/recognition.py`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EngineSettings(BaseModel):
    """How the recognition engine partitions, indexes and searches descriptors.

    The defaults are what `python bench/recognition.py` measured best on 1M synthetic dlib-like
    descriptors in 100 stores (p99 under 5 ms, agreement with exact search over 99.5%).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dim: int = Field(128, ge=2, le=4096, description="descriptor length (dlib: 128)")
    n_trees: int = Field(
        20,
        ge=1,
        le=512,
        description="random-projection trees per Annoy index: more trees, better recall, "
        "bigger files and longer builds",
    )
    search_k: int = Field(
        3000,
        ge=1,
        description="Annoy nodes inspected per query (its search_k): the recall/latency knob",
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
        "instead of through an Annoy index: below this size exact search is as fast and "
        "never misses",
    )
    rebuild_buffer_limit: int = Field(
        20_000,
        ge=1,
        description="samples waiting in one partition's exact buffer (added since the last "
        "rebuild) above which `rebuild_due()` says to rebuild; each one costs every query that "
        "reaches that partition",
    )
    region_level: bool = Field(
        True,
        description="widen store -> region -> everything (True) or store -> everything (False)",
    )
    build_jobs: int = Field(
        1,
        ge=-1,
        le=256,
        description="threads Annoy builds each index with (-1: every core); the default leaves "
        "the other cores to queries while a rebuild runs",
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Annoy's random seed (reproducible)")
    prefault: bool = Field(
        False,
        description="read whole index files into memory when loading them instead of paging "
        "them in on demand",
    )
