"""`storesight-eval openset`: arguments in, table and JSON out (see evaluation.openset)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloud_api.recognition.policy import DecisionPolicy
from cloud_api.settings import CloudSettings
from evaluation.face_cache import FaceCache, analyse_photos
from evaluation.openset import build_protocol, run, summary
from evaluation.openset_compare import compare, label_agreement
from evaluation.openset_data import (
    GroupLabels,
    read_identities,
    reviewed_same_person,
    shared_layout,
)
from evaluation.openset_fit import fit_policy, policy_fields
from evaluation.tables import format_table

SHARED_LAYOUT = Path("var/eval/openset-shared")


def openset(args: argparse.Namespace, data: Path) -> int:
    if args.enrolled is None:
        enrolled_dir, strangers_dir, distractor_dirs = shared_layout(data, SHARED_LAYOUT)
    else:
        if args.strangers is None or not args.distractors:
            raise ValueError("--enrolled needs --strangers and at least one --distractors")
        enrolled_dir, strangers_dir, distractor_dirs = (
            args.enrolled,
            args.strangers,
            list(args.distractors),
        )
    sizes = _sizes(args.sizes)
    policy = _policy(args.policy)
    enrolled = read_identities(enrolled_dir)
    strangers = read_identities(strangers_dir)
    distractors = [i for folder in distractor_dirs for i in read_identities(folder)]
    protocol = build_protocol(enrolled, strangers, distractors, GroupLabels(args.gender_csv))
    cache = FaceCache(args.cache)
    try:
        faces = analyse_photos(protocol.photos(), cache=cache, workers=args.workers)
    finally:
        cache.close()
    reviewed = reviewed_same_person(data) if args.enrolled is None else set()
    agreement = label_agreement(protocol, faces) if args.compare else None
    cleaned, duplicates = protocol.without_duplicates(faces, reviewed)
    protocol = cleaned.probes_of(args.half)
    result = run(protocol, faces, sizes, policy)
    figures = summary(result, policy)
    figures["protocol"]["nonmated_probes_dropped_as_duplicates"] = duplicates
    figures["data"] = {
        "half": args.half,
        "enrolled": str(enrolled_dir),
        "strangers": str(strangers_dir),
        "distractors": [str(d) for d in distractor_dirs],
        "distractors_available": len(protocol.distractors),
    }
    print(
        f"non-mated probes dropped: {duplicates} (the same face is among the enrolled or "
        "distractor photos under another name)"
    )
    print(_main_table(figures))
    print()
    print(_group_table(figures, policy))
    if args.fit is not None:
        # every size with the same mix of distractor sources: the fit is about size alone
        shuffled = run(protocol.shuffled(0), faces, sizes, policy)
        fitted = fit_policy(shuffled.sizes)
        figures["fit"] = fitted
        args.fit.write_text(json.dumps(policy_fields(fitted), indent=2) + "\n")
        print(f"\nfitted on the {args.half} half: {json.dumps(policy_fields(fitted))}")
        print(f"wrote {args.fit} (use it with --policy, or as the cloud's recognition_file)")
    if args.compare:
        rows = compare(protocol, cleaned.probes_of("fit"), faces, sizes, policy)
        figures["compare"] = rows
        figures["label_agreement"] = agreement
        print("\nwhat each idea buys, at the largest size (" + args.half + " probes)")
        print(format_table(list(rows[0]), [list(r.values()) for r in rows]))
        print(f"close non-mated UTKFace pairs and their labels: {agreement}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated whole numbers, got {text!r}") from None
    if not sizes or min(sizes) < 0:
        raise ValueError(f"--sizes must list numbers of distractors >= 0, got {text!r}")
    return sizes


def _policy(path: Path | None) -> DecisionPolicy:
    configured = CloudSettings().decision_policy()
    if path is None:
        return configured
    return configured.with_overrides(json.loads(path.read_text()))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _main_table(figures: dict[str, Any]) -> str:
    rows = []
    for size in figures["sizes"]:
        single, visit = size["single"], size["visit"]
        rows.append(
            [
                size["distractors"],
                size["customers"],
                _pct(single["returning"]["fpir"]),
                _pct(visit["returning"]["fpir"]),
                _pct(single["member"]["fpir"]),
                _pct(visit["member"]["fpir"]),
                _pct(single["returning"]["fnir"]),
                _pct(visit["returning"]["fnir"]),
                _pct(visit["member"]["fnir"]),
                _pct(visit["returning"]["wrong_identity"]),
                _pct(visit["rank1"]),
            ]
        )
    first = figures["sizes"][0] if figures["sizes"] else {"single": {}, "visit": {}}
    head = (
        f"probes: single {first['single'].get('mated')} mated / "
        f"{first['single'].get('nonmated')} non-mated; visits {first['visit'].get('mated')} "
        f"mated / {first['visit'].get('nonmated')} non-mated"
    )
    return (
        head
        + "\n"
        + format_table(
            [
                "distractors",
                "customers",
                "FPIR ret single",
                "FPIR ret visit",
                "FPIR mem single",
                "FPIR mem visit",
                "FNIR ret single",
                "FNIR ret visit",
                "FNIR mem visit",
                "wrong id visit",
                "rank1 visit",
            ],
            rows,
        )
    )


def _group_table(figures: dict[str, Any], policy: DecisionPolicy) -> str:
    if not figures["sizes"]:
        return ""
    largest = figures["sizes"][-1]
    rows = [
        [
            group,
            row["nonmated"],
            _pct(row["returning"]["fpir"]),
            f"{(row['returning']['fpir'] or 0) / policy.returning_fpir:.1f}x",
            _pct(row["member"]["fpir"]),
        ]
        for group, row in largest["by_group"].items()
    ]
    title = f"non-mated probes by group at {largest['distractors']} distractors"
    return (
        title
        + "\n"
        + format_table(["group", "probes", "FPIR returning", "vs target", "FPIR member"], rows)
    )
