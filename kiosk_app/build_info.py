"""What build of the kiosk this is: its version and git commit.

A packaged kiosk carries them in ``build_info.json`` beside this module (written by
``installers/build.py`` when it builds the bundle). Run from source, the version is the
installed distribution's and the commit is asked of git, when there is one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BUILD_INFO_FILE = Path(__file__).with_name("build_info.json")
#: the source tree (or, in the bundle, the folder holding the packages and their data)
APP_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str
    frozen: bool  # running from the PyInstaller bundle

    def describe(self) -> str:
        kind = "package" if self.frozen else "source"
        return f"storesight-kiosk {self.version} (commit {self.commit}, {kind})"


def is_frozen() -> bool:
    """True inside the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


@cache
def build_info() -> BuildInfo:
    if BUILD_INFO_FILE.is_file():
        baked = json.loads(BUILD_INFO_FILE.read_text(encoding="utf-8"))
        return BuildInfo(str(baked["version"]), str(baked["commit"]), is_frozen())
    return BuildInfo(_installed_version(), git_commit(APP_ROOT), is_frozen())


def _installed_version() -> str:
    try:
        return version("storesight")
    except PackageNotFoundError:
        return "dev"


def git_commit(root: Path) -> str:
    """`root`'s short commit, "+dirty" with changes; "unknown" where git cannot say."""
    commit = _git(root, "rev-parse", "--short=12", "HEAD")
    if not commit:
        return "unknown"
    return (
        f"{commit}+dirty" if _git(root, "status", "--porcelain", "--untracked-files=no") else commit
    )


def _git(root: Path, *args: str) -> str:
    """What `git -C root ARGS` prints, "" when it fails or there is no git."""
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
