"""The cloud's recognition engine: returning customers found among partitioned Annoy indexes.

See `cloud_api.recognition.engine` for the design and `bench/recognition.py` for the figures
its defaults come from.
"""

from cloud_api.recognition.engine import RebuildReport, RecognitionEngine
from cloud_api.recognition.partitions import (
    GENDERS,
    LEVELS,
    PARTITION_AGE_BANDS,
    UNKNOWN_AGE_BAND,
    Gender,
    Level,
    Match,
    SampleMeta,
    age_band,
)
from cloud_api.recognition.settings import EngineSettings

__all__ = [
    "PARTITION_AGE_BANDS",
    "GENDERS",
    "LEVELS",
    "UNKNOWN_AGE_BAND",
    "EngineSettings",
    "Gender",
    "Level",
    "Match",
    "RebuildReport",
    "RecognitionEngine",
    "SampleMeta",
    "age_band",
]
