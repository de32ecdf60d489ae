"""The folders `storesight-eval openset` reads, and the shared data laid out as such folders.

A folder holds one sub-folder per identity (`<identity>/<image>`); an image directly in the
folder is an identity of its own (UTKFace-style flat folders of single crops). Everything is in
sorted order, so the protocol is the same on every machine.

Group labels for fairness figures come from UTKFace file names (`age_gender_race_*.jpg`) and,
for LFW, from `faces/lfw_gender.csv` when present.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
UTK_RACES = ("white", "black", "asian", "indian", "others")
UTK_GENDERS = ("male", "female")
AGE_GROUPS = ((0, 15, "age 0-15"), (16, 29, "age 16-29"), (30, 44, "age 30-44"))
AGE_GROUPS_OLDER = ((45, 59, "age 45-59"), (60, 200, "age 60+"))


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    photos: tuple[Path, ...]


def is_photo(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES


def read_identities(root: Path) -> list[Identity]:
    """The identities of a folder, sorted by name (see the module docstring)."""
    if not root.is_dir():
        raise FileNotFoundError(f"identity folder not found: {root}")
    found: list[Identity] = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            photos = tuple(sorted(p for p in entry.iterdir() if is_photo(p)))
            if photos:
                found.append(Identity(entry.name, photos))
        elif is_photo(entry):
            found.append(Identity(entry.name, (entry,)))
    return found


def half_of(name: str) -> str:
    """'fit' or 'report': a fixed split of identities by a salted hash of their name (salted:
    the shared data's curators already kept one unsalted half of UTKFace aside)."""
    digest = hashlib.sha256(b"storesight-openset-half:" + name.encode()).digest()
    return "fit" if digest[0] % 2 == 0 else "report"


def age_group(years: int) -> str:
    for low, high, name in AGE_GROUPS + AGE_GROUPS_OLDER:
        if low <= years <= high:
            return name
    return "age unknown"


def utk_meta(path: Path) -> tuple[int, int, int] | None:
    """(age, gender code, ethnicity code) from a UTKFace file name; None for other names."""
    parts = path.name.split("_")
    if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
        return None
    age, gender, race = (int(p) for p in parts[:3])
    if gender >= len(UTK_GENDERS) or race >= len(UTK_RACES):
        return None
    return age, gender, race


def utk_labels(path: Path) -> dict[str, str]:
    """Age group, gender and ethnicity from a UTKFace file name; {} for other names."""
    meta = utk_meta(path)
    if meta is None:
        return {}
    age, gender, race = meta
    return {"age": age_group(age), "gender": UTK_GENDERS[gender], "ethnicity": UTK_RACES[race]}


class GroupLabels:
    """Labels of a photo: from its file name (UTKFace) or an LFW-style gender list."""

    def __init__(self, gender_csv: Path | None = None) -> None:
        self._gender: dict[str, str] = {}
        if gender_csv is not None and gender_csv.is_file():
            with gender_csv.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if row.get("person") and row.get("gender") in UTK_GENDERS:
                        self._gender[row["person"]] = row["gender"]

    def of(self, identity: Identity) -> dict[str, str]:
        labels = utk_labels(identity.photos[0])
        if not labels and identity.name in self._gender:
            labels = {"gender": self._gender[identity.name]}
        return labels


def shared_layout(data: Path, out: Path) -> tuple[Path, Path, list[Path]]:
    """The shared data as enrolled / strangers / distractor folders, made of symlinks.

    * enrolled: LFW people with 3 or more photos (2 enrolled, the rest mated probes);
    * strangers: LFW people with exactly 2 photos (singles and visits), and every 5th UTKFace
      crop in sorted order (labelled singles: the fairness figures);
    * distractors: LFW people with one photo, then the other UTKFace crops.

    Nothing is copied: the folders hold links into `data`.
    """
    lfw = data / "faces" / "lfw"
    utk = data / "agegender" / "utkface"
    for folder, what in ((lfw, "LFW people folders"), (utk, "UTKFace crops")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} not found: {folder}")
    enrolled, strangers = out / "enrolled", out / "strangers"
    lfw_singles, utk_others = out / "distractors-lfw", out / "distractors-utkface"
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if is_photo(p))
        target = enrolled if len(photos) >= 3 else strangers if len(photos) == 2 else lfw_singles
        for photo in photos:
            _link(photo, target / person.name / photo.name)
    crops = sorted(p for p in utk.iterdir() if is_photo(p))
    for index, crop in enumerate(crops):
        _link(crop, (strangers if index % 5 == 0 else utk_others) / crop.name)
    return enrolled, strangers, [lfw_singles, utk_others]


def _link(source: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(source.resolve())


REVIEWED_SAME_PERSON = Path(__file__).with_name("reviewed_same_person.csv")


def reviewed_same_person(data: Path, path: Path = REVIEWED_SAME_PERSON) -> set[frozenset[Path]]:
    """Pairs of shared-data photos people looked at and judged to show the same person.

    The file lists the candidate pairs of the shared data (a non-mated photo and a gallery
    photo within 0.45 of it, not already caught by the automatic rules) with a reviewer's
    verdict each (same / different / unsure), and a second, independent reviewer's verdict
    for the pairs the first was unsure of. A pair counts when the first said "same", or was
    unsure and the second said "same"; paths are relative to the shared data folder.
    """
    if not path.is_file():
        return set()
    pairs: set[frozenset[Path]] = set()
    root = data.resolve()
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            first, second = row.get("verdict"), row.get("second_verdict")
            if first == "same" or (first == "unsure" and second == "same"):
                pairs.add(frozenset({root / row["probe"], root / row["gallery"]}))
    return pairs
