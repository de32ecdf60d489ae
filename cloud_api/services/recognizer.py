"""The database-backed recogniser: the gallery's indexes and templates kept in step with the DB.

The database is the source of truth. Every process polls it for samples and deletions it has
not seen (its own included, so there is one path for all of them), which is how a customer
enrolled through one API process is recognised through another within `sync_interval_s`.
Samples and deletions are read with a look-back window below the high-water marks, because ids
from concurrent transactions can commit out of order.

Index versions (`cloud_api.recognition.index_versions`): with an index directory, the indexes
are not built by every process. One process per directory, the holder of its build lock (the
`storesight-cloud indexer`, or the first `serve` process to take it), builds them into a
version, published with the database marks it holds (`SyncMark`). Every process maps the
newest version read-only and reads from the database only what lies beyond its marks: a
process starting with a version serves within seconds. `refresh` moves to a newer version
without a restart, dropping from the exact buffers what the version now holds; deletions read
after the version's mark stay applied as tombstones on top of it, so a deleted customer never
comes back. Without an index directory (`versions=None`), the process loads every sample and
rebuilds its own indexes (`maintain`), as a lone process does in tests and evaluations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.models import CustomerDeletion, FaceSample, utcnow
from cloud_api.db.session import checkpoint_wal
from cloud_api.recognition import EngineSettings, Gender, RecognitionEngine, SampleMeta, age_band
from cloud_api.recognition.gallery import Decision, Gallery, Shot, Visit
from cloud_api.recognition.index_versions import (
    IndexDirectory,
    IndexSettings,
    Manifest,
    MappedVersion,
    SyncMark,
    builder_name,
    writing,
)
from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.recognition.templates import TemplateTable
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
        versions: IndexDirectory | None = None,
    ) -> None:
        self._factory = factory
        settings = settings or EngineSettings()
        # With index versions, indexes are only ever built into a version: no files of its own.
        self.engine = RecognitionEngine(settings, index_dir if versions is None else None)
        self.gallery = Gallery(self.engine, policy)
        self.versions = versions
        self._index_settings = IndexSettings.of(settings, policy.verified_weight)
        self._sync_lock = threading.Lock()
        self._high_sample_id = 0
        self._recent_ids: set[int] = set()
        self._high_deletion_id = 0
        self._recent_deletion_ids: set[int] = set()
        self._synced_from = 0  # monotonic_ns when the last completed sync started
        # change feed: announcements heard, and how many had been when the last completed
        # sync started; `catch_up` reads nothing while the feed is live and quiet
        self._feed_live: Callable[[], bool] | None = None
        self._heard = 0
        self._heard_at_sync = -1
        self._last_rebuild = time.monotonic()
        self._version = 0  # the index version mapped
        self.published = 0  # index versions this process built
        self._loaded = False

    @property
    def ready(self) -> bool:
        """Whether the stored samples have been read into the engine (start-up done)."""
        return self._loaded

    @property
    def policy(self) -> DecisionPolicy:
        return self.gallery.policy

    @property
    def version(self) -> int:
        """The index version mapped (0: none)."""
        return self._version

    # ---- keeping in step with the database ----------------------------------------------

    def load(self) -> int:
        """Start-up: map the newest index version, if there is one, and read the samples and
        deletions beyond it (without one: every stored sample); returns how many samples were
        read from the database."""
        started = time.perf_counter()
        version = (
            self.versions.open_newest(self._index_settings) if self.versions is not None else None
        )
        with self._sync_lock, self._factory() as session:
            if version is not None:
                self._adopt(version)
            else:
                self._high_deletion_id = (
                    session.scalar(
                        select(CustomerDeletion.id).order_by(CustomerDeletion.id.desc()).limit(1)
                    )
                    or 0
                )
                self._recent_deletion_ids = set(
                    session.scalars(
                        select(CustomerDeletion.id).where(
                            CustomerDeletion.id > self._high_deletion_id - LOOK_BACK_IDS
                        )
                    )
                )
            total = 0
            last = self._high_sample_id
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
            if version is not None:  # the gaps below its mark, and the deletions after it
                added, _ = self._sync(session)
                total += added
            self._loaded = True
        log.info(
            "recognizer_loaded",
            samples=total,
            index_version=self._version,
            samples_mapped=version.rows.count if version is not None else 0,
            seconds=round(time.perf_counter() - started, 3),
        )
        return total

    def follow(self, live: Callable[[], bool]) -> None:
        """Let a change feed spare reads: `live` says whether its notifications arrive now;
        the feed calls `heard` for each one about samples or deletions and whenever its state
        changes."""
        self._feed_live = live

    def heard(self) -> None:
        """The change feed announced samples or deletions (or connected, or lost its
        connection): the next `catch_up` reads."""
        self._heard += 1

    def catch_up(self) -> tuple[int, int]:
        """`sync`, unless a live change feed has announced nothing since the last sync began:
        then everything other processes committed before their announcement was heard has
        been read, and there is nothing to ask the database (the request path's sync: one
        process's own commits are synced by the request that made them)."""
        if self._feed_live is not None and self._feed_live() and self._heard == self._heard_at_sync:
            return 0, 0
        return self.sync()

    def sync(self) -> tuple[int, int]:
        """Apply samples and deletions committed since the last sync (by any process).

        A call that finds another thread's sync running waits for it and then returns at
        once when a sync that started after this call has completed: that one read
        everything committed before this call (so request threads share one sync)."""
        asked = time.monotonic_ns()
        with self._sync_lock:
            if self._synced_from > asked:
                return 0, 0
            heard = self._heard
            began = time.monotonic_ns()
            with self._factory() as session:
                counts = self._sync(session)
            self._synced_from = began
            self._heard_at_sync = heard
            return counts

    def _sync(self, session: Session) -> tuple[int, int]:
        # Unseen rows: above the newest id read, or the gaps below it within the look-back
        # (ids a concurrent transaction took and had not committed when it was last read).
        high = self._high_sample_id
        gaps = _gaps(high, self._recent_ids)
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
        # Deletions likewise: one committed late must still reach every process.
        high = self._high_deletion_id
        late = _gaps(high, self._recent_deletion_ids)
        deletions = list(
            session.scalars(
                select(CustomerDeletion)
                .where(CustomerDeletion.id > high)
                .order_by(CustomerDeletion.id)
            ).all()
        )
        for start in range(0, len(late), 500):
            chunk = late[start : start + 500]
            deletions += session.scalars(
                select(CustomerDeletion).where(CustomerDeletion.id.in_(chunk))
            ).all()
        for deletion in deletions:
            self.gallery.remove(deletion.customer_id)
            self._recent_deletion_ids.add(deletion.id)
            self._high_deletion_id = max(self._high_deletion_id, deletion.id)
        floor = self._high_deletion_id - LOOK_BACK_IDS
        self._recent_deletion_ids = {i for i in self._recent_deletion_ids if i > floor}
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

    # ---- index versions ------------------------------------------------------------------

    def refresh(self) -> bool:
        """Move to a newer published index version, if there is one (whether it did)."""
        if self.versions is None:
            return False
        version = self.versions.open_newest(self._index_settings, newer_than=self._version)
        if version is None:
            return False
        with self._sync_lock:
            return self._adopt(version)

    def _adopt(self, version: MappedVersion) -> bool:
        """Serve from `version` (under the sync lock); what it holds leaves the buffers and
        the sync marks take in what it read."""
        if version.number <= self._version:
            return False
        started = time.perf_counter()
        buffered = self.gallery.adopt(version)
        mark = version.manifest.mark
        high = max(self._high_sample_id, mark.high_sample_id)
        floor = high - LOOK_BACK_IDS
        held = set(range(max(floor, 0) + 1, mark.high_sample_id + 1)) - set(mark.sample_gaps)
        self._recent_ids = {i for i in self._recent_ids | held if i > floor}
        self._high_sample_id = high
        if not self._loaded:  # starting: the version's deletions are this process's
            self._high_deletion_id = mark.high_deletion_id
            window = range(
                max(0, mark.high_deletion_id - LOOK_BACK_IDS) + 1, mark.high_deletion_id + 1
            )
            self._recent_deletion_ids = set(window) - set(mark.deletion_gaps)
        self._version = version.number
        log.info(
            "index_version_mapped",
            version=version.number,
            samples_mapped=version.rows.count,
            samples_buffered=buffered,
            seconds=round(time.perf_counter() - started, 3),
        )
        return True

    def publish_due(self, *, max_age_s: float) -> str | None:
        """Why this builder should publish a version now, or None: none mapped yet, a
        deletion since the last one (the deleted descriptors leave the files at once), more
        samples beyond it than `rebuild_buffer_limit`, or some for `max_age_s`."""
        stats = self.engine.stats()
        unpublished = int(stats["unpublished"])
        if not self._version:
            return "no version"
        if stats["removals_pending"] > 0:
            return "deletions"
        if unpublished > self.engine.settings.rebuild_buffer_limit:
            return "buffer full"
        if unpublished and time.monotonic() - self._last_rebuild >= max_age_s:
            return "age"
        return None

    def publish(self) -> Manifest:
        """Build a version from what this process holds now, publish it and map it (the
        holder of the directory's build lock only). Searches, syncs and deletions go on
        while it builds; older versions are removed once it is published."""
        if self.versions is None or not self.versions.building:
            raise RuntimeError("only the holder of the index directory's build lock publishes")
        started = time.perf_counter()
        with self._sync_lock:  # the marks and the snapshot describe the same rows
            mark = self._mark()
            snapshot, table = self.gallery.snapshot()
        log.info(
            "index_version_building",
            samples=sum(p.live for p in snapshot.plans if p.key[0] == "store"),
            annoy_indexes=sum(p.want_annoy for p in snapshot.plans),
        )
        with writing(self.versions) as writer:
            exported = self.engine.export(snapshot, writer)
            for name in TemplateTable.ARRAYS:
                writer.save(f"templates.{name}", getattr(table, name))
            manifest = Manifest.model_validate(
                {
                    "version": writer.number,
                    "created_at": utcnow(),
                    "builder": builder_name(),
                    "settings": self._index_settings,
                    "mark": mark,
                    "customers": len(table),
                    "build_seconds": round(time.perf_counter() - started, 3),
                    **exported.fields(),
                }
            )
            writer.commit(manifest)
        self.published += 1
        self._last_rebuild = time.monotonic()
        self.refresh()
        self.versions.prune()
        shown = {"version", "samples", "customers", "annoy_built", "annoy_linked", "build_seconds"}
        log.info("index_version_published", **manifest.model_dump(include=shown))
        return manifest

    def _mark(self) -> SyncMark:
        return SyncMark(
            high_sample_id=self._high_sample_id,
            sample_gaps=tuple(_gaps(self._high_sample_id, self._recent_ids)),
            high_deletion_id=self._high_deletion_id,
            deletion_gaps=tuple(_gaps(self._high_deletion_id, self._recent_deletion_ids)),
        )

    def maintain(self, *, max_age_s: float) -> None:
        """Keep the indexes fresh. With index versions, the directory's builder publishes one
        when `publish_due` says so (other processes do nothing here: they `refresh`).
        Without, the engine is rebuilt in place when a buffer outgrew its limit, when
        `max_age_s` passed since the last rebuild and there is something to fold in, or at once
        when customers were deleted since the last rebuild. Either way a deletion's
        descriptors leave the index files, and (SQLite) the deleted rows leave the
        write-ahead log, without waiting for the next period."""
        deleted = self.engine.stats()["removals_pending"] > 0
        if self.versions is not None:
            if not self.versions.building:
                return
            reason = self.publish_due(max_age_s=max_age_s)
            if reason is not None:
                log.info("index_version_due", reason=reason)
                self.publish()
        else:
            now = time.monotonic()
            stats = self.engine.stats()
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
        """Close the engine; with `remove_files`, its own index files are deleted too (index
        versions are left to `IndexDirectory.leave`)."""
        self.engine.close(remove_files=remove_files)


def _gaps(high: int, seen: set[int]) -> list[int]:
    """The ids of the look-back window below `high` not read yet."""
    return [i for i in range(max(0, high - LOOK_BACK_IDS) + 1, high + 1) if i not in seen]


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
