"""`storesight-eval openset` end to end on a small folder set of real LFW photos.

The folders are links into the shared data, laid out as the command expects. Enrolled
people have 5 photos each (2 enrolled, 3 mated single probes, 1 visit of 3); strangers have
2 photos (2 singles, 1 visit); one stranger is planted next to an enrolled person's name
(`Andre_Agassi_2`, Colin Powell's photos) to show that a name proves nothing, only the face.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.cli import main
from tests.conftest import require

pytestmark = pytest.mark.slow

ENROLLED = ("Andre_Agassi", "Hugo_Chavez", "Laura_Bush", "Tony_Blair")
STRANGERS = ("Angela_Bassett", "Ana_Palacio")
DISTRACTORS = ("Jennifer_Capriati",)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def _folders(data_dir: Path, root: Path) -> tuple[Path, Path, Path]:
    lfw = require(data_dir / "faces" / "lfw")
    enrolled, strangers, distractors = root / "enrolled", root / "strangers", root / "others"
    for person in ENROLLED:
        for photo in sorted((lfw / person).glob("*.jpg"))[:5]:
            _link(photo, enrolled / person / photo.name)
    for person in STRANGERS:
        for photo in sorted((lfw / person).glob("*.jpg"))[:2]:
            _link(photo, strangers / person / photo.name)
    for photo in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2]:  # the planted impostor
        _link(photo, strangers / "Andre_Agassi_2" / photo.name)
    for index, photo in enumerate(sorted((lfw / DISTRACTORS[0]).glob("*.jpg"))[:3]):
        _link(photo, distractors / f"{index}.jpg")  # flat: each photo its own identity
    return enrolled, strangers, distractors


def test_openset_counts_probes_and_rejects_the_planted_impostor(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enrolled, strangers, distractors = _folders(data_dir, tmp_path / "faces")
    out = tmp_path / "openset.json"
    code = main(
        [
            "openset",
            "--enrolled", str(enrolled),
            "--strangers", str(strangers),
            "--distractors", str(distractors),
            "--sizes", "0,2,3",
            "--workers", "1",
            "--cache", str(tmp_path / "faces.sqlite3"),
            "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "distractors" in printed and "FPIR ret visit" in printed
    figures = json.loads(out.read_text())
    sizes = figures["sizes"]
    assert [s["distractors"] for s in sizes] == [0, 2, 3]
    assert [s["customers"] for s in sizes] == [4, 6, 7]
    for size in sizes:
        single, visit = size["single"], size["visit"]
        # 4 enrolled x 3 other photos; 3 strangers x 2 photos
        assert (single["mated"], single["nonmated"]) == (12, 6)
        # 4 enrolled x 1 visit of 3; 3 strangers x 1 visit of 2
        assert (visit["mated"], visit["nonmated"]) == (4, 3)
        for kind in ("returning", "member"):
            assert single[kind]["fpir"] == 0.0 and visit[kind]["fpir"] == 0.0
            assert visit[kind]["wrong_identity"] == 0.0
        # LFW photos of one person span years; a visit of 3 still finds every one of them
        assert visit["returning"]["fnir"] == 0.0
        assert visit["rank1"] == 1.0
    # the planted impostor stood next to Andre Agassi's name: refused as anyone
    assert figures["protocol"]["nonmated_probes_dropped_as_duplicates"] == 0


def test_openset_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openset", "--enrolled", str(tmp_path), "--sizes", "0"]) == 1
    assert "--enrolled needs --strangers" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["openset", "--enrolled", str(empty), "--strangers", str(empty)]
    assert main([*args, "--distractors", str(empty), "--sizes", "0,x"]) == 1
    assert "--sizes must be comma-separated whole numbers" in capsys.readouterr().err
