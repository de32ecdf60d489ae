"""The database-backed recogniser: the gallery's indexes and templates kept in step with the DB.

The database is the source of truth. At start the engine is loaded from `face_samples`; after
that every process polls for samples and deletions it has not seen (its own included, so there
is one path for all of them), which is how a customer enrolled through one API process is
recognised through another within `sync_interval_s`. Samples are read with a look-back window
below the high-water mark, because ids from concurrent transactions can commit out of order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import CustomerDeletion, FaceSample
from cloud_api.db.session import checkpoint_wal
from cloud_api.recognition import EngineSettings, Gender, RecognitionEngine, SampleMeta, age_band
from cloud_api.recognition.gallery import Decision, Gallery, Shot, Visit
from cloud_api.recognition.policy import DecisionPolicy
from contract import Embedding

log = structlog.get_logger(__name__)

DESCRIPTOR_DTYPE = np.dtype("<f4")
#: How far below the newest id already read a sync looks again for late commits.
LOOK_BACK_IDS = 2_000
_LOAD_BATCH = 20_000


def to_bytes(vector: Sequence[float] | NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype=DESCRIPTOR_DTYPE).tobytes()


def from_bytes(raw: bytes) -> NDArray[np.float32]:
    return np.frombuffer(raw, dtype=DESCRIPTOR_DTYPE).astype(np.float32)


@dataclass(frozen=True)
class QueryContext:
    """Where a face was seen and what the cloud estimated about it."""

    region_id: int
    store_id: int
    gender: Gender
    age_band: int
    age_years: float | None = None


class Recognizer:
    """The gallery (engine, templates, decision policy) fed from the database."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        policy: DecisionPolicy,
        index_dir: Path | None,
        settings: EngineSettings | None = None,
    ) -> None:
        self._factory = factory
        self.engine = RecognitionEngine(settings or EngineSettings(), index_dir)
        self.gallery = Gallery(self.engine, policy)
        self._sync_lock = threading.Lock()
        self._high_sample_id = 0
        self._recent_ids: set[int] = set()
        self._high_deletion_id = 0
        self._synced_from = 0  # monotonic_ns when the last completed sync started
        self._last_rebuild = time.monotonic()
        self._loaded = False

    @property
    def ready(self) -> bool:
        """Whether the stored samples have been read into the engine (start-up done)."""
        return self._loaded

    @property
    def policy(self) -> DecisionPolicy:
        return self.gallery.policy

    # ---- keeping in step with the database ----------------------------------------------

    def load(self) -> int:
        """Read every stored sample into the engine (start-up); returns how many."""
        with self._sync_lock, self._factory() as session:
            self._high_deletion_id = (
                session.scalar(
                    select(CustomerDeletion.id).order_by(CustomerDeletion.id.desc()).limit(1)
                )
                or 0
            )
            total = 0
            last = 0
            while True:
                rows = session.scalars(
                    select(FaceSample)
                    .where(FaceSample.id > last)
                    .order_by(FaceSample.id)
                    .limit(_LOAD_BATCH)
                ).all()
                if not rows:
                    break
                self._add_rows(rows)
                last = rows[-1].id
                total += len(rows)
            self._high_sample_id = last
            self._loaded = True
        log.info("recognizer_loaded", samples=total)
        return total

    def sync(self) -> tuple[int, int]:
        """Apply samples and deletions committed since the last sync (by any process).

        A call that finds another thread's sync running waits for it and then returns at
        once when a sync that started after this call has completed: that one read
        everything committed before this call (so request threads share one sync)."""
        asked = time.monotonic_ns()
        with self._sync_lock:
            if self._synced_from > asked:
                return 0, 0
            began = time.monotonic_ns()
            with self._factory() as session:
                counts = self._sync(session)
            self._synced_from = began
            return counts

    def _sync(self, session: Session) -> tuple[int, int]:
        # Unseen rows: above the newest id read, or the gaps below it within the look-back
        # (ids a concurrent transaction took and had not committed when it was last read).
        high = self._high_sample_id
        low = max(0, high - LOOK_BACK_IDS)
        gaps = [i for i in range(low + 1, high + 1) if i not in self._recent_ids]
        fresh = list(
            session.scalars(
                select(FaceSample).where(FaceSample.id > high).order_by(FaceSample.id)
            ).all()
        )
        for start in range(0, len(gaps), 500):
            chunk = gaps[start : start + 500]
            fresh += session.scalars(select(FaceSample).where(FaceSample.id.in_(chunk))).all()
        if fresh:
            fresh.sort(key=lambda row: row.id)
            self._add_rows(fresh)
            self._high_sample_id = max(high, fresh[-1].id)
        floor = self._high_sample_id - LOOK_BACK_IDS
        self._recent_ids = {i for i in self._recent_ids if i > floor}
        deletions = session.scalars(
            select(CustomerDeletion)
            .where(CustomerDeletion.id > self._high_deletion_id)
            .order_by(CustomerDeletion.id)
        ).all()
        for deletion in deletions:
            self.gallery.remove(deletion.customer_id)
            self._high_deletion_id = deletion.id
        return len(fresh), len(deletions)

    def _add_rows(self, rows: Iterable[FaceSample]) -> None:
        everything = list(rows)
        width = self.engine.settings.dim * DESCRIPTOR_DTYPE.itemsize
        rows = [r for r in everything if len(r.descriptor or b"") == width]
        for bad in (r for r in everything if len(r.descriptor or b"") != width):
            log.warning("sample_not_indexed", sample=bad.id, reason="descriptor has wrong size")
        self._recent_ids.update(r.id for r in everything)  # a bad row is not read again
        if not rows:
            return
        metas = [
            SampleMeta(
                customer_id=r.customer_id,
                region_id=r.region_id,
                store_id=r.store_id,
                gender=r.gender,  # type: ignore[arg-type]
                age_band=r.age_band,
            )
            for r in rows
        ]
        vectors = np.stack([from_bytes(r.descriptor) for r in rows])
        qualities = [r.quality for r in rows]
        verified = [bool(r.verified) for r in rows]
        try:
            self.gallery.add_samples([r.id for r in rows], vectors, metas, qualities, verified)
        except ValueError:
            # One bad row (e.g. a sample committed just before its customer was deleted) must
            # not stop the rest: add one by one and log what was refused.
            for i, row in enumerate(rows):
                try:
                    self.gallery.add_samples(
                        [row.id],
                        vectors[i : i + 1],
                        metas[i : i + 1],
                        qualities[i : i + 1],
                        verified[i : i + 1],
                    )
                except ValueError as error:
                    log.warning("sample_not_indexed", sample=row.id, reason=str(error))
        self._recent_ids.update(r.id for r in rows)

    def maintain(self, *, max_age_s: float) -> None:
        """Rebuild the indexes when a buffer outgrew its limit, when `max_age_s` passed since
        the last rebuild and there is something to fold in, or at once when customers were
        deleted since the last rebuild: their descriptors leave the index files, and (SQLite)
        the deleted rows leave the write-ahead log, without waiting for the next period."""
        now = time.monotonic()
        stats = self.engine.stats()
        deleted = stats["removals_pending"] > 0
        stale = now - self._last_rebuild >= max_age_s and stats["buffered_max"] > 0
        if self.engine.rebuild_due() or stale or deleted:
            report = self.engine.rebuild()
            self._last_rebuild = time.monotonic()
            log.info("index_rebuilt", report=str(report))
        if deleted:
            bind = self._factory.kw.get("bind")
            if bind is not None:
                checkpoint_wal(bind)

    def forget(self, customer_id: int) -> None:
        """Drop a customer from this process's gallery at once (deletion)."""
        self.gallery.remove(customer_id)

    def knows(self, customer_id: int) -> bool:
        """Whether the customer has face samples this process has read."""
        return self.gallery.knows(customer_id)

    # ---- deciding ----------------------------------------------------------------------

    def decide(
        self,
        embeddings: Sequence[Embedding],
        context: QueryContext,
        *,
        exclude: Iterable[int] = (),
    ) -> Decision:
        """The open-set decision about one face's shots (see Gallery.decide)."""
        shots = [
            Shot(np.asarray(e.values(), dtype=np.float32), float(e.quality)) for e in embeddings
        ]
        visit = Visit(shots, context.region_id, context.store_id, age_years=context.age_years)
        return self.gallery.decide(visit, exclude=exclude)

    def close(self, *, remove_files: bool = False) -> None:
        """Close the engine; with `remove_files`, its index files are deleted too."""
        self.engine.close(remove_files=remove_files)


def sample_rows(
    customer_id: int,
    embeddings: Sequence[Embedding],
    context: QueryContext,
    *,
    verified: bool = False,
) -> list[FaceSample]:
    return [
        FaceSample(
            customer_id=customer_id,
            region_id=context.region_id,
            store_id=context.store_id,
            gender=context.gender,
            age_band=context.age_band,
            descriptor=to_bytes(e.values()),
            quality=e.quality,
            verified=verified,
        )
        for e in embeddings
    ]


def context_for(
    region_id: int, store_id: int, gender: str | None, age_years: float | None
) -> QueryContext:
    return QueryContext(
        region_id=region_id,
        store_id=store_id,
        gender="female" if gender == "female" else "male" if gender == "male" else "unknown",
        age_band=age_band(age_years) if age_years is not None else -1,
        age_years=age_years,
    )
