"""`storesight-models`: fetch, verify and list the models StoreSight runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from models.errors import ModelError
from models.fetch import FetchResult, fetch
from models.manifest import load_manifest, models_dir
from models.store import ModelStore
from storesight_common.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storesight-models", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=None, help="model directory (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="download, extract and verify models (idempotent)")
    fetch_cmd.add_argument("names", nargs="*", help="models to fetch (default: all)")
    verify_cmd = sub.add_parser("verify", help="check fetched models against the manifest")
    verify_cmd.add_argument("names", nargs="*", help="models to check (default: all)")
    sub.add_parser("list", help="show each model's source, licence and input contract")
    args = parser.parse_args(argv)
    configure_logging()
    root: Path = args.dir if args.dir is not None else models_dir()
    try:
        if args.command == "fetch":
            return _fetch(root, args.names or None)
        if args.command == "verify":
            return _verify(root, args.names or None)
        return _list()
    except ModelError as error:
        print(f"storesight-models: error: {error}", file=sys.stderr)
        return 1


def _fetch(root: Path, names: list[str] | None) -> int:
    total = len(names) if names else len(load_manifest().models)
    with tqdm(total=total, desc="models", unit="model") as bar:

        def done(result: FetchResult) -> None:
            bar.set_postfix_str(f"{result.name}: {result.action}")
            bar.update(1)

        fetch(names, root=root, on_done=done)
    return 0


def _verify(root: Path, names: list[str] | None) -> int:
    store = ModelStore(root)
    failures = 0
    for name in names if names else sorted(store.manifest.models):
        try:
            path = store.path(name)
            print(f"ok       {name:24} {path}")
        except ModelError as error:
            failures += 1
            print(f"FAILED   {name:24} {error}")
    return 1 if failures else 0


def _list() -> int:
    manifest = load_manifest()
    for name, spec in sorted(manifest.models.items()):
        contract = spec.input
        size = f"{contract.width}x{contract.height}" if contract.width else "any size"
        where = spec.source.path_in_wheel if spec.source else spec.file
        print(
            f"{name:24} {spec.origin:28} {spec.license:12} {size:9} "
            f"{contract.color_order} {contract.layout}  {where}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
