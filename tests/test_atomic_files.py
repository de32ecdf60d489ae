"""`storesight_common.files`: the one atomic-replace helper every package writes files with."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from storesight_common.files import replacing, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "kiosk.json"
    target.write_text("old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["kiosk.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_write_atomic_sets_the_mode_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    write_atomic(target, b"{}", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failing_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="converter died"), replacing(target) as temp:
        seen.append(temp)
        temp.write_bytes(b"half")
        raise RuntimeError("converter died")
    assert target.read_bytes() == b"old"
    assert not seen[0].exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_the_temporary_is_a_dotfile_beside_the_target_with_the_given_suffix(
    tmp_path: Path,
) -> None:
    target = tmp_path / "global.ann"
    with replacing(target, suffix=".ann.tmp") as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".global.ann.") and temp.name.endswith(".ann.tmp")
        temp.write_bytes(b"index")
    assert target.read_bytes() == b"index"
