"""An immutable Annoy index over one partition's samples, as they were at a rebuild.

Building happens outside the engine's lock. With an index directory the finished index is
saved to a temporary file beside its final name, `os.replace`d into place and loaded again
memory-mapped: a file that some index has mapped is never written to, only unlinked from its
name by the rename, so searches still running on the previous index keep reading the old inode
until they drop it. Without an index directory the index stays in memory (tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from annoy import AnnoyIndex

from cloud_api.recognition.exact_buffer import NO_HITS, Hits, Labels, Rows
from cloud_api.recognition.settings import EngineSettings
from storesight_common.files import replacing

log = structlog.get_logger(__name__)

INDEX_SUFFIX = ".ann"
TEMP_SUFFIX = ".ann.tmp"
#: index files hold customers' face descriptors: readable by the service's user only
INDEX_FILE_MODE = 0o600
_ADD_CHUNK = 8192  # rows converted to Python lists at a time (tolist is ~4x faster per item)


@dataclass(frozen=True, slots=True)
class AnnoyPartition:
    """An Annoy index plus, per item number, the sample it stands for."""

    index: AnnoyIndex
    labels: Labels
    path: Path | None

    @property
    def n_items(self) -> int:
        return len(self.labels.sample_ids)

    @property
    def disk_bytes(self) -> int:
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except FileNotFoundError:
            return 0

    @property
    def nbytes(self) -> int:
        """Memory held outside the (memory-mapped) index: the item -> sample table."""
        return self.labels.nbytes

    def hits(self, query: list[float], threshold: float, n: int, search_k: int) -> Hits:
        """Those of the `n` approximate nearest items closer than `threshold`, nearest first.

        When all `n` are closer, more may be: the caller asks again with a larger `n` if it
        needs to look past them (they all belong to removed customers, say).
        """
        items, distances = self.index.get_nns_by_vector(query, n, search_k, True)
        if not items or distances[0] >= threshold:
            return NO_HITS
        dist = np.asarray(distances, dtype=np.float64)
        keep = int(np.searchsorted(dist, threshold, side="left"))
        return Hits(dist[:keep], self.labels.take(np.asarray(items[:keep], dtype=np.intp)))


def build_partition(
    name: str, blocks: Iterable[Rows], settings: EngineSettings, index_dir: Path | None
) -> AnnoyPartition:
    """Index the rows of `blocks` (item numbers in their order) and publish the index file."""
    index, labels = _build(blocks, settings)
    path = None
    if index_dir is not None:
        path = index_dir / f"{name}{INDEX_SUFFIX}"
        index = _publish(index, path, settings.dim, prefault=settings.prefault)
    return AnnoyPartition(index, labels, path)


def write_index(blocks: Iterable[Rows], settings: EngineSettings, path: Path) -> None:
    """Index the rows of `blocks` into a new file at `path` (an index version being written:
    nobody maps it yet)."""
    index, _ = _build(blocks, settings)
    index.save(str(path))
    index.unload()
    path.chmod(INDEX_FILE_MODE)


def _build(blocks: Iterable[Rows], settings: EngineSettings) -> tuple[AnnoyIndex, Labels]:
    index = AnnoyIndex(settings.dim, "euclidean")
    index.set_seed(settings.seed)
    labels: list[Labels] = []
    item = 0
    for block in blocks:
        for lo in range(0, block.count, _ADD_CHUNK):
            for row in block.vectors[lo : lo + _ADD_CHUNK].tolist():
                index.add_item(item, row)
                item += 1
        labels.append(block.labels)
    index.build(settings.n_trees, settings.build_jobs)
    return index, Labels.concat(labels)


def _publish(built: AnnoyIndex, path: Path, dim: int, *, prefault: bool) -> AnnoyIndex:
    """Save to a temporary file, rename it over `path`, and load `path` memory-mapped."""
    # the temporary file sits in an owner-only directory until it gets INDEX_FILE_MODE
    with replacing(path, mode=INDEX_FILE_MODE, suffix=TEMP_SUFFIX) as temp:
        built.save(str(temp))  # Annoy writes (a new file, whatever was there), then maps it
        built.unload()
    loaded = AnnoyIndex(dim, "euclidean")
    loaded.load(str(path), prefault)
    log.debug("recognition_index_published", path=str(path), bytes=path.stat().st_size)
    return loaded


def remove_stale_temp_files(index_dir: Path) -> int:
    """Delete temporary index files a crashed process left behind; how many.

    An index directory belongs to one engine at a time, so any temporary file found when it
    starts is left over from an interrupted rebuild.
    """
    removed = 0
    for temp in index_dir.glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("recognition_stale_temp_files_removed", index_dir=str(index_dir), count=removed)
    return removed
