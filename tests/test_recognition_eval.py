"""`storesight-eval verify` and `identify`: the metrics on known numbers, then the real thing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.identification import Split, read_gallery, split_gallery
from evaluation.identification import evaluate as identify
from evaluation.verification import Pair, best_threshold, read_pairs, tar_at_far
from evaluation.verification import evaluate as verify
from facelib.analyzer import FaceAnalyzer
from facelib.config import FaceLibSettings
from facelib.images import read_rgb
from models.store import ModelStore
from tests.conftest import require


def test_best_threshold_separates_separable_distances() -> None:
    distances = np.array([0.2, 0.3, 0.4, 0.8, 0.9, 1.0])
    same = np.array([True, True, True, False, False, False])
    t = best_threshold(distances, same)
    assert 0.4 < t < 0.8
    assert t == pytest.approx(0.6)  # midpoint of the tied best range


def test_tar_at_far_allows_only_the_permitted_false_accepts() -> None:
    impostors = np.linspace(0.5, 1.5, 2000)  # FAR 1e-3 of 2000 allows 2 below the threshold
    genuine = np.array([0.4, 0.5005, 0.502, 0.6])
    distances = np.concatenate([genuine, impostors])
    same = np.array([True] * 4 + [False] * 2000)
    tar, threshold = tar_at_far(distances, same, 1e-3)
    assert np.sum(impostors < threshold) == 2
    assert threshold == pytest.approx(impostors[2])
    assert tar == pytest.approx(0.5)  # 0.4 and 0.5005 fall below impostors[2] ~ 0.501


def test_unfound_faces_count_as_different(tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / n for n in "abcd")
    v = np.zeros(128, dtype=np.float32)
    pairs = [Pair(a, b, True, 0), Pair(c, d, False, 0), Pair(a, b, True, 1), Pair(c, d, False, 1)]
    result = verify(pairs, {a: v, b: None, c: v, d: v + 1})
    assert result.not_found == 1
    assert result.pairs_without_face == 2
    assert result.accuracy == pytest.approx(0.5)  # same pairs missed, different pairs right


def test_read_pairs_names_a_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.txt"
    bad.write_text("1 1\nAlice 1 2\n")
    with pytest.raises(ValueError, match="expected 2 pairs"):
        read_pairs(bad, tmp_path)


def test_identification_counts_strangers_and_misses(tmp_path: Path) -> None:
    photos = {name: [tmp_path / f"{name}{i}.jpg" for i in range(3)] for name in "ABS"}
    split = Split(
        enrolled={"A": photos["A"][:1], "B": photos["B"][:1]},
        probes=[("A", photos["A"][1]), ("A", photos["A"][2]), ("B", photos["B"][1])]
        + [("S", p) for p in photos["S"]],
        strangers={"S"},
    )
    e = np.eye(128, dtype=np.float32)
    codes = {
        photos["A"][0]: e[0],
        photos["B"][0]: e[1],
        photos["A"][1]: e[0] * 0.9,  # right, close
        photos["A"][2]: None,  # no face: missed
        photos["B"][1]: e[0] * 0.95,  # nearest is A: misidentified
        photos["S"][0]: e[2],  # far from everyone: rejected
        photos["S"][1]: e[1] * 0.8,  # close to B: a false accept
        photos["S"][2]: None,
    }
    result = identify(split, codes, threshold=0.5)
    assert result.rank1 == pytest.approx(1 / 3)
    assert result.false_accept == pytest.approx(1 / 3)
    assert result.false_reject == pytest.approx(2 / 3)
    assert result.misidentified == pytest.approx(1 / 3)
    assert result.not_found == 2


def test_split_is_seeded_and_keeps_strangers_out_of_the_gallery(data_dir: Path) -> None:
    people = read_gallery(require(data_dir / "faces" / "lfw"), min_photos=4)
    one = split_gallery(people, enrol=2, stranger_share=0.2, seed=3)
    two = split_gallery(people, enrol=2, stranger_share=0.2, seed=3)
    assert one == two
    assert not one.strangers & set(one.enrolled)
    assert abs(len(one.strangers) - 0.2 * len(people)) <= 1
    enrolled_photos = {p for ps in one.enrolled.values() for p in ps}
    assert not enrolled_photos & {p for _, p in one.probes}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluation.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_verify_on_real_lfw_pairs(data_dir: Path, tmp_path: Path, store: ModelStore) -> None:
    """A 2-fold slice of the dev pairs through the real detector, aligner and ONNX embedder."""
    source = require(data_dir / "faces" / "pairs-dev.txt").read_text().splitlines()
    per_class = int(source[0].split()[1])
    keep = 30
    body = []
    for fold in range(2):
        start = 1 + fold * 2 * per_class
        body += source[start : start + keep] + source[start + per_class : start + per_class + keep]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join([f"2\t{keep}", *body]) + "\n")
    out = tmp_path / "verify.json"
    result = _run(
        "verify", "--pairs", str(pairs), "--images", str(data_dir / "faces/lfw"), "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert {"accuracy", "tar_at_far_1e-3", "threshold", "not_found"} <= set(figures)
    assert figures["pairs"] == 4 * keep
    assert figures["accuracy"] >= 0.95
    assert 0.4 < figures["threshold"] < 0.8
    assert figures["not_found"] == 0


@pytest.mark.slow
def test_identify_on_real_person_folders(data_dir: Path, tmp_path: Path, store: ModelStore) -> None:
    lfw = require(data_dir / "faces" / "lfw")
    gallery = tmp_path / "gallery"
    people = sorted(p for p in lfw.iterdir() if len(list(p.glob("*.jpg"))) >= 5)[:12]
    for person in people:
        (gallery / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:5]:
            (gallery / person.name / photo.name).symlink_to(photo)
    out = tmp_path / "identify.json"
    result = _run("identify", "--gallery", str(gallery), "--strangers", "0.25", "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert {"rank1", "false_accept", "false_reject", "threshold"} <= set(figures)
    assert figures["strangers"] == 3 and figures["people_enrolled"] == 9
    assert figures["known_probes"] == 9 * 3 and figures["stranger_probes"] == 3 * 5
    assert figures["rank1"] >= 0.9
    assert figures["threshold"] == FaceLibSettings().recognition.identify_threshold

    strict_out = tmp_path / "strict.json"
    strict_args = ["--strangers", "0.25", "--threshold", "0.3", "--json", str(strict_out)]
    result = _run("identify", "--gallery", str(gallery), *strict_args)
    assert result.returncode == 0, result.stderr
    strict = json.loads(strict_out.read_text())
    assert strict["rank1"] == figures["rank1"]  # rank 1 does not depend on the threshold
    assert strict["false_accept"] == 0.0 <= figures["false_accept"]
    assert strict["false_reject"] > figures["false_reject"]


def test_analyzer_descriptors_tell_people_apart(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    """Through the whole face library: two photos of one person are closer than another's."""
    lfw = require(data_dir / "faces" / "lfw")
    same_a, same_b = sorted((lfw / "Andre_Agassi").glob("*.jpg"))[:2]
    other = sorted((lfw / "Angela_Bassett").glob("*.jpg"))[0]
    codes = []
    for photo in (same_a, same_b, other):
        faces = analyzer.analyze(read_rgb(photo))
        assert faces and faces[0].descriptor is not None
        codes.append(faces[0].descriptor)
    threshold = FaceLibSettings().recognition.match_threshold
    assert float(np.linalg.norm(codes[0] - codes[1])) < threshold
    assert float(np.linalg.norm(codes[0] - codes[2])) > threshold
