"""Index versions: built once by one process, memory-mapped read-only by every other.

A version is a directory of the index directory, named `v000000042` once it is complete:

    manifest.json           what the version holds (`Manifest`): written last
    rows.<column>.npy       every sample it holds, grouped by store in ascending store id:
                            vectors (n, dim) float32, sq_norms, sample_ids, customer_ids,
                            regions, genders, bands. A store searched exactly is searched on
                            these; they are also the master copy the next version starts from
    templates.<array>.npy   every customer's template (`cloud_api.recognition.templates`)
    store-<id>.ann          the Annoy index of a store too big to search exactly (its rows, in
                            order)
    region-<id>.ann         (region_level="index") its stores' rows, by store id
    global.ann              everyone's rows in file order (none while exact search suffices)

The builder writes a version under a temporary dotted name (`.v000000042.tmp`), flushes every
file to disk, writes the manifest, then renames the directory: a reader sees a whole version or
none. Files are 0600 in 0700 directories: they hold face descriptors.

Locks (`flock`; the kernel releases them when their process ends, SIGKILL included):

``build.lock``
    held exclusively by the one process that builds and publishes versions in this directory
    (`storesight-cloud indexer`, or the first `serve` process to take it).
``in-use.lock``
    held shared by every process using the directory. The last one to leave cleanly takes it
    exclusively and, unless the service keeps versions over a stop, removes every file.

Old versions: after publishing, the builder removes every version but the newest. A process
still mapping an older one goes on reading it undisturbed (on POSIX an unlinked file lives
while it is mapped, and its disk space returns when the last mapping goes: that process's next
version check), and a process that finds a version vanish while it opens it opens the newest
instead. So a version nobody maps is never left on disk, and no version is ever removed from
under a reader.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import structlog
from annoy import AnnoyIndex
from numpy.typing import DTypeLike, NDArray
from pydantic import BaseModel, ConfigDict

from cloud_api.recognition.annoy_partition import INDEX_FILE_MODE, INDEX_SUFFIX
from cloud_api.recognition.exact_buffer import ROW_DTYPES, Rows, rows_from_columns
from cloud_api.recognition.settings import EngineSettings
from cloud_api.recognition.templates import TemplateTable
from storesight_common.files import write_atomic

log = structlog.get_logger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
BUILD_LOCK = "build.lock"
IN_USE_LOCK = "in-use.lock"
_VERSION_NAME = re.compile(r"v(\d{9})")
_TEMP_NAME = re.compile(r"\.v(\d{9})\.tmp")
_PROCESS_DIR = re.compile(r".+-\d+")
DIRECTORY_MODE = 0o700
Writable = np.memmap[Any, np.dtype[Any]]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class IndexSettings(_Frozen):
    """The settings a version was built with that decide what a reader finds in it: a process
    with other values ignores the version (and its builder publishes one with its own)."""

    format: int = FORMAT
    metric: Literal["euclidean"] = "euclidean"
    dim: int
    n_trees: int
    seed: int
    exact_max_size: int
    region_level: str
    verified_weight: float  # templates weigh verified samples by it

    @staticmethod
    def of(engine: EngineSettings, verified_weight: float) -> IndexSettings:
        fields = {"dim", "n_trees", "seed", "exact_max_size", "region_level"}
        return IndexSettings(**engine.model_dump(include=fields), verified_weight=verified_weight)


class SyncMark(_Frozen):
    """Which database rows a version holds: every sample with id <= `high_sample_id` but
    the `sample_gaps` (ids its builder had not seen committed: a reader looks for them), and
    every deletion with id <= `high_deletion_id` but the `deletion_gaps` applied (their
    customers' samples left out). Gaps lie within the look-back window below the mark."""

    high_sample_id: int = 0
    sample_gaps: tuple[int, ...] = ()
    high_deletion_id: int = 0
    deletion_gaps: tuple[int, ...] = ()

    def holds(self, sample_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of these samples the version was built with (or purged, as a deleted
        customer's)."""
        held: NDArray[np.bool_] = sample_ids <= self.high_sample_id
        if self.sample_gaps:
            held &= ~np.isin(sample_ids, np.array(self.sample_gaps, np.int64))
        return held


class StoreEntry(_Frozen):
    store: int
    region: int
    start: int  # its rows in rows.*.npy
    stop: int
    annoy: str | None  # file name, when the store is searched through Annoy


class RegionEntry(_Frozen):
    region: int
    annoy: str | None


class Manifest(_Frozen):
    """What one version holds and how it was made."""

    version: int
    created_at: datetime
    builder: str  # host:pid
    settings: IndexSettings
    mark: SyncMark
    samples: int
    customers: int
    removed_customers: int  # tombstones applied: removed customers whose samples it leaves out
    stores: tuple[StoreEntry, ...]
    regions: tuple[RegionEntry, ...]  # region_level="index" only
    global_annoy: str | None
    annoy_built: int  # Annoy indexes built for this version
    annoy_linked: int  # unchanged ones taken over from the version before (hard links)
    build_seconds: float


def version_name(number: int) -> str:
    return f"v{number:09d}"


@dataclass(frozen=True, eq=False)
class MappedVersion:
    """A complete version opened read-only: arrays memory-mapped, Annoy indexes loaded
    (memory-mapped too). Dropping the last reference unmaps everything."""

    number: int
    path: Path
    manifest: Manifest
    rows: Rows
    templates: TemplateTable
    annoy: dict[str, AnnoyIndex] = field(repr=False)

    @property
    def store_regions(self) -> dict[int, int]:
        return {entry.store: entry.region for entry in self.manifest.stores}

    def store_rows(self, entry: StoreEntry) -> Rows:
        return self.rows.take(slice(entry.start, entry.stop))

    def annoy_path(self, name: str) -> Path:
        return self.path / name


def _open(path: Path, number: int, prefault: bool) -> MappedVersion:
    """Map one complete version; FileNotFoundError when it vanished meanwhile."""
    manifest = Manifest.model_validate_json((path / MANIFEST).read_bytes(), strict=False)
    rows = rows_from_columns(
        {name: np.load(path / f"rows.{name}.npy", mmap_mode="r") for name in ROW_DTYPES}
    )
    table = TemplateTable(
        *(np.load(path / f"templates.{name}.npy", mmap_mode="r") for name in TemplateTable.ARRAYS)
    )
    if prefault:
        for array in _searched(manifest, rows, table):
            _page_in(array)
    names = [e.annoy for e in manifest.stores] + [e.annoy for e in manifest.regions]
    annoy: dict[str, AnnoyIndex] = {}
    for name in [*names, manifest.global_annoy]:
        if name is None:
            continue
        file = path / name
        index = AnnoyIndex(manifest.settings.dim, manifest.settings.metric)
        try:
            index.load(str(file), prefault)
        except OSError:
            if not file.is_file():
                raise FileNotFoundError(file) from None
            raise
        annoy[name] = index
    return MappedVersion(number, path, manifest, rows, table, annoy)


class VersionWriter:
    """A version being written, under its temporary name until `commit`."""

    def __init__(self, root: Path, number: int) -> None:
        self.number = number
        self.root = root
        self.path = root / f".{version_name(number)}.tmp"
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(mode=DIRECTORY_MODE)
        self._files: list[Path] = []

    def array(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> Writable:
        """A new .npy file of that shape, mapped for writing (flush() it when written)."""
        file = self._file(f"{name}.npy")
        open_memmap = cast(Callable[..., Writable], np.lib.format.open_memmap)
        return open_memmap(file, mode="w+", dtype=dtype, shape=shape)

    def save(self, name: str, values: NDArray[np.generic]) -> None:
        np.save(self._file(f"{name}.npy"), np.ascontiguousarray(values))

    def annoy_path(self, name: str) -> Path:
        """Where to build an Annoy index named `name`."""
        return self._file(f"{name}{INDEX_SUFFIX}")

    def link(self, name: str, source: Path) -> bool:
        """Take an unchanged index file over from the version before (a hard link: no copy,
        and the pages its readers already have in memory stay shared)."""
        try:
            os.link(source, self.path / f"{name}{INDEX_SUFFIX}")
        except OSError:  # gone, or another file system: the caller builds it
            return False
        return True

    def _file(self, name: str) -> Path:
        file = self.path / name
        self._files.append(file)
        return file

    def commit(self, manifest: Manifest) -> Path:
        """Flush every file, write the manifest last and publish by renaming."""
        for file in self.path.iterdir():
            os.chmod(file, INDEX_FILE_MODE)
            with open(file, "rb") as stream:
                os.fsync(stream.fileno())
        write_atomic(
            self.path / MANIFEST,
            manifest.model_dump_json(indent=1).encode(),
            mode=INDEX_FILE_MODE,
        )
        _fsync_dir(self.path)
        final = self.root / version_name(self.number)
        os.rename(self.path, final)  # atomic; fails if a version of that number exists
        _fsync_dir(self.root)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class IndexDirectory:
    """The index directory one or more processes on a machine share (see the module doc)."""

    def __init__(self, root: Path, *, prefault: bool = False) -> None:
        self.root = root
        self.prefault = prefault
        self._in_use: int | None = None
        self._build: int | None = None

    # ---- joining and leaving ------------------------------------------------------------

    def enter(self) -> None:
        """Join the processes using the directory (created 0700 when missing)."""
        if self._in_use is not None:
            return
        self.root.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        self.root.chmod(DIRECTORY_MODE)  # its files hold descriptors
        self._in_use = _lock(self.root / IN_USE_LOCK, fcntl.LOCK_SH, wait=True)

    def leave(self, *, remove: bool) -> bool:
        """Stop using the directory. With `remove`, the last process to leave deletes every
        version and lock file (the directory itself stays); returns whether it did."""
        joined = self._in_use is not None
        for fd in (self._build, self._in_use):
            if fd is not None:
                os.close(fd)
        self._build = self._in_use = None
        if not (joined and remove):
            return False
        # Shared lock dropped first, then the exclusive one tried: of two processes leaving
        # at once, the later one's try finds the other gone.
        last = _lock(self.root / IN_USE_LOCK, fcntl.LOCK_EX, wait=False)
        if last is None:
            return False  # others still use it
        try:
            for entry in self.root.iterdir():
                if entry.is_dir() and (_version_number(entry) or _temp_number(entry)):
                    _remove(entry)
            for name in (BUILD_LOCK, IN_USE_LOCK):
                (self.root / name).unlink(missing_ok=True)
        finally:
            os.close(last)
        log.info("index_versions_removed", index_dir=str(self.root))
        return True

    # ---- building -----------------------------------------------------------------------

    @property
    def building(self) -> bool:
        """Whether this process holds the build lock."""
        return self._build is not None

    def try_build(self) -> bool:
        """Take the build lock if no other process holds it; whether this process holds it.
        The new builder removes what an interrupted build left behind."""
        if self._build is None:
            self._build = _lock(self.root / BUILD_LOCK, fcntl.LOCK_EX, wait=False)
            if self._build is not None:
                for entry in self.root.iterdir():
                    # an interrupted build's, an interrupted removal's (no manifest), or a
                    # process's own directory of the releases before index versions (host-pid)
                    if entry.is_dir() and (
                        _temp_number(entry)
                        or (_version_number(entry) and not (entry / MANIFEST).is_file())
                        or _PROCESS_DIR.fullmatch(entry.name)
                    ):
                        _remove(entry)
                log.info("index_builder_elected", index_dir=str(self.root), pid=os.getpid())
        return self._build is not None

    def begin(self) -> VersionWriter:
        """A writer for the next version (the build lock must be held)."""
        if self._build is None:
            raise RuntimeError("only the holder of the build lock writes index versions")
        numbers = self.versions()
        return VersionWriter(self.root, (numbers[-1] if numbers else 0) + 1)

    def prune(self) -> list[int]:
        """Remove every complete version but the newest (the builder, after publishing)."""
        numbers = self.versions()
        for number in numbers[:-1]:
            _remove(self.root / version_name(number))
        if numbers[:-1]:
            log.info("index_versions_pruned", removed=numbers[:-1], kept=numbers[-1])
        return numbers[:-1]

    # ---- reading ------------------------------------------------------------------------

    def versions(self) -> list[int]:
        """The complete versions present, oldest first."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        numbers = [_version_number(e) for e in entries if (e / MANIFEST).is_file()]
        return sorted(n for n in numbers if n)

    def newest(self) -> int | None:
        numbers = self.versions()
        return numbers[-1] if numbers else None

    def open_newest(self, wanted: IndexSettings, *, newer_than: int = 0) -> MappedVersion | None:
        """The newest complete version built with `wanted` settings (newer than `newer_than`),
        mapped; None when there is none."""
        damaged: set[int] = set()
        while True:
            candidates = [n for n in self.versions() if n > newer_than and n not in damaged]
            if not candidates:
                return None
            number = candidates[-1]
            path = self.root / version_name(number)
            try:
                version = _open(path, number, self.prefault)
            except FileNotFoundError as error:
                if number in self.versions():  # still listed: a file is missing
                    log.warning("index_version_damaged", version=number, missing=str(error))
                    damaged.add(number)
                continue  # or superseded and removed while being opened: take the newest
            if version.manifest.settings != wanted:
                log.warning(
                    "index_version_ignored",
                    version=number,
                    reason="built with other index settings",
                    built_with=version.manifest.settings.model_dump(),
                )
                return None
            return version


def _searched(manifest: Manifest, rows: Rows, table: TemplateTable) -> list[NDArray[Any]]:
    """The arrays searches read: labels, templates and the descriptors of what is searched
    exactly (a store with an Annoy index keeps its rows only for the next build)."""
    if manifest.global_annoy is None:
        exact = [rows]
    else:
        exact = [rows.take(slice(e.start, e.stop)) for e in manifest.stores if e.annoy is None]
    descriptors = [array for part in exact for array in (part.vectors, part.sq_norms)]
    templates = [getattr(table, name) for name in table.ARRAYS]
    return [*rows.labels.columns(), *descriptors, *templates]


def _page_in(array: NDArray[Any]) -> None:
    """Read one byte of every page of a mapped array, so that it is all in memory now."""
    flat = np.asarray(array).reshape(-1).view(np.uint8)
    int(flat[:: mmap.PAGESIZE].sum())


def _remove(directory: Path) -> None:
    """Delete a version's directory, its manifest first: interrupted, it is no version."""
    (directory / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)


def _version_number(entry: Path) -> int:
    match = _VERSION_NAME.fullmatch(entry.name)
    return int(match.group(1)) if match else 0


def _temp_number(entry: Path) -> int:
    match = _TEMP_NAME.fullmatch(entry.name)
    return int(match.group(1)) if match else 0


def _lock(path: Path, operation: int, *, wait: bool) -> int | None:
    """An fd holding `operation` (LOCK_SH/LOCK_EX) on `path`, or None when not waiting and
    another process holds a conflicting lock. Checks that the locked file is still the one
    at `path` (the last process out may have removed it meanwhile)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, operation if wait else operation | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def builder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def writing(directory: IndexDirectory) -> Iterator[VersionWriter]:
    """A version writer whose temporary directory is removed if the block fails."""
    writer = directory.begin()
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
