"""Build the packaged kiosk: a PyInstaller one-folder app, then a Debian package of it.

    python installers/build.py [--skip-deb] [--deb-version V]

Steps (each prints what it does; the whole build takes a few minutes):

1. A build virtualenv (``build/package-venv``) with only the kiosk's dependencies
   (``.[kiosk]``, not the cloud's or the development tools), PyInstaller pinned. OpenCV is the
   headless build: MediaPipe asks for opencv-contrib-python, whose GUI libraries the kiosk
   never uses (Qt draws every window).
2. The model files the kiosk runs with (``kiosk_app.kiosk_models``: detectors, embedder; age
   and gender are the cloud's), checked against ``models/manifest.json`` (a corrupt or
   missing file stops the build, naming it).
3. ``build/package/build_info.json``: the version and git commit ``--version`` prints.
4. PyInstaller with ``installers/storesight-kiosk.spec`` into ``dist/storesight-kiosk/``.
5. A check of what went in: no cloud code, tests, dlib or development-only model.
6. ``dist/storesight-kiosk_<version>_<arch>.deb`` with ``dpkg-deb`` (see ``installers/linux``).

Windows: step 1 and 4 run the same there (``py installers\\build.py --skip-deb``), then Inno
Setup compiles ``installers/windows/storesight-kiosk.iss``; see installers/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the models package, before any install

from installers.bundle_contents import forbidden_files  # noqa: E402
from kiosk_app.build_info import git_commit  # noqa: E402
from kiosk_app.kiosk_models import KIOSK_MODELS  # noqa: E402
from models.store import ModelStore  # noqa: E402

PYINSTALLER = ("pyinstaller==6.22.3", "pyinstaller-hooks-contrib==2026.9")
VENV = REPO / "build" / "package-venv"
WORK = REPO / "build" / "package"
DIST = REPO / "dist"
APP = DIST / "storesight-kiosk"
SPEC = REPO / "installers" / "storesight-kiosk.spec"
PACKAGE = "storesight-kiosk"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-deb", action="store_true", help="build the app folder only")
    parser.add_argument(
        "--deb-version", default=None, help="the package's version (default: the project's)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    python = _build_venv()
    models = _checked_models()
    info = _write_build_info()
    _pyinstaller(python, models)
    problems = forbidden_files(APP)
    if problems:
        raise SystemExit("the bundle holds what it must not:\n  " + "\n  ".join(problems))
    _step(f"bundle ok: {APP} ({folder_bytes(APP) / 1e6:.0f} MB on disk)")
    if not args.skip_deb and sys.platform.startswith("linux"):
        from installers.deb import build_deb

        deb = build_deb(APP, args.deb_version or info["version"], DIST, WORK / "deb")
        _step(f"debian package: {deb} ({deb.stat().st_size / 1e6:.0f} MB)")
    _step(f"done in {time.monotonic() - started:.0f} s")
    return 0


def _step(text: str) -> None:
    print(f"[package] {text}", flush=True)


def _run(
    command: Iterable[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    subprocess.run([str(c) for c in command], check=True, env=env, cwd=cwd)


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _build_venv() -> Path:
    """The build environment, made once and refreshed when pyproject.toml changes."""
    python = _venv_python()
    stamp = VENV / ".installed"
    if stamp.is_file() and stamp.stat().st_mtime >= (REPO / "pyproject.toml").stat().st_mtime:
        _step(f"build environment: {VENV} (up to date)")
        return python
    _step(f"build environment: {VENV} (kiosk dependencies and {PYINSTALLER[0]})")
    if not python.exists():
        _run([sys.executable, "-m", "venv", VENV])
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    _run([*pip, "--upgrade", "pip"])
    _run([*pip, f"{REPO}[kiosk]", *PYINSTALLER])
    # one OpenCV, the headless one (see the module docstring)
    _run([python, "-m", "pip", "uninstall", "--quiet", "-y", "opencv-contrib-python"])
    headless = _requirement("opencv-python-headless")
    _run([*pip, "--force-reinstall", "--no-deps", headless])
    stamp.touch()
    return python


def _requirement(name: str) -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for requirement in project["project"]["dependencies"]:
        if requirement.replace(" ", "").startswith(name):
            return str(requirement)
    raise SystemExit(f"pyproject.toml does not name {name}")


def _checked_models() -> list[tuple[Path, str]]:
    """(file, folder in the bundle) of each model the kiosk runs with, its sha256 checked."""
    store = ModelStore()
    found = [
        (store.path(name), "models/files") for name in KIOSK_MODELS
    ]  # raises naming a bad file
    _step(f"models: the kiosk's {len(found)} files checked against the manifest")
    return found


def _write_build_info() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    commit = git_commit(REPO)
    info = {
        "version": str(project["project"]["version"]),
        "commit": commit,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "built_on": f"{platform.system()} {platform.machine()}",
    }
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    _step(f"version {info['version']}, commit {commit}")
    return info


def _pyinstaller(python: Path, models: list[tuple[Path, str]]) -> None:
    _step(f"PyInstaller: {SPEC.name} -> {APP}")
    environment = {
        **os.environ,
        "STORESIGHT_REPO": str(REPO),
        "STORESIGHT_BUILD_INFO": str(WORK / "build_info.json"),
        "STORESIGHT_BUNDLE_MODELS": json.dumps([[str(p), d] for p, d in models]),
    }
    if APP.exists():
        shutil.rmtree(APP)
    _run(
        [
            python,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            DIST,
            "--workpath",
            WORK / "pyinstaller",
            SPEC,
        ],
        env=environment,
        cwd=REPO,
    )


def folder_bytes(folder: Path) -> int:
    """Bytes on disk of the folder's files, a link counted once (as the link)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir())


if __name__ == "__main__":
    raise SystemExit(main())
