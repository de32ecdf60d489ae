"""The Debian package of the kiosk bundle, built with plain ``dpkg-deb``.

What it installs:

- ``/opt/storesight-kiosk/``: the PyInstaller folder, and ``/usr/bin/storesight-kiosk``
  linking to its program;
- ``/usr/share/applications/storesight-kiosk.desktop``: the menu entry;
- ``/usr/lib/systemd/user/storesight-kiosk.service``: the till user's unit, which runs
  ``storesight-kiosk run --kiosk`` and starts it again after a crash;
- ``/etc/xdg/autostart/storesight-kiosk.desktop``: starts that unit when the till user's
  desktop session starts (or the app itself where the session has no systemd).

What it never touches: the machine's configuration and the outbox live in the till user's
own folders (``~/.config/storesight``, ``~/.local/share/storesight``), so an upgrade or a
removal keeps them; unsent checkouts are never deleted by the package manager.

The post-install step runs ``storesight-kiosk selftest --installation`` (the models' hashes
and the face pipeline), so a damaged install fails to install rather than fails at the till.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

LINUX = Path(__file__).resolve().parent / "linux"
NAME = "storesight-kiosk"
PREFIX = Path("opt") / NAME
#: the Debian packages Qt's X11 (xcb) platform and OpenGL need on the till
DEPENDS = (
    "libc6 (>= 2.31)",
    "libgl1",
    "libegl1",
    "libfontconfig1",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-xkb1",
    "libdbus-1-3",
)


def architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_deb(app: Path, version: str, out_dir: Path, stage: Path) -> Path:
    """Stage `app` and the files in ``installers/linux`` and build the .deb into `out_dir`."""
    if stage.exists():
        shutil.rmtree(stage)
    arch = architecture()
    root = stage / f"{NAME}_{version}_{arch}"
    shutil.copytree(app, root / PREFIX, symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / NAME).symlink_to(Path("/") / PREFIX / NAME)
    _place(LINUX / "storesight-kiosk.desktop", root / "usr/share/applications", 0o644)
    _place(LINUX / "storesight-kiosk-autostart.desktop", root / "etc/xdg/autostart", 0o644)
    _place(LINUX / "storesight-kiosk.service", root / "usr/lib/systemd/user", 0o644)
    debian = root / "DEBIAN"
    debian.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        _place(LINUX / script, debian, 0o755)
    installed_kb = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir()) // 1024
    (debian / "control").write_text(
        (LINUX / "control.in")
        .read_text(encoding="utf-8")
        .format(
            version=version,
            arch=arch,
            depends=", ".join(DEPENDS),
            installed_size=installed_kb,
        ),
        encoding="utf-8",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"{root.name}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-z6", "--build", str(root), str(deb)],
        check=True,
    )
    return deb


def _place(source: Path, folder: Path, mode: int) -> None:
    """Copy `source` into `folder`; the autostart entry is installed under the app's name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = source.name.replace("-autostart", "")
    target = folder / name
    shutil.copyfile(source, target)
    target.chmod(mode)
