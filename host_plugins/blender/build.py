#!/usr/bin/env python3
"""Build the installable FoleySpace Blender extension: ``foleyspace-blender-<version>.zip``.

Steps: copy ``foleyspace_blender/``, vendor the thin client (``foleyspace/client.py``,
``protocol.py``, ``home.py``, ``atomic_file.py``) as ``fsclient/``, get pyzmq and msgpack wheels for each
platform and Python version (from ``--wheel-dir``, else ``pip download``), write the
manifest's ``platforms`` and ``wheels``, and zip with the extension files at the zip root.

Usage::

    python host_plugins/blender/build.py [-o DIR] [--platform linux-x64 ...] [--python 3.11 ...]
                                         [--wheel-dir DIR] [--no-wheels] [--unpacked]

Exits with status 1 and a one-line message on failure.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SOURCE = HERE / "foleyspace_blender"
CLIENT_FILES = ("client.py", "protocol.py", "home.py", "atomic_file.py")
#: The client's dependencies, pinned as in DESIGN.md §4.
PACKAGES = ("pyzmq==27.3.0", "msgpack==1.2.4")
#: pip ``--platform`` tags per Blender platform (pip also accepts older compatible tags).
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "linux-arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_14_0_arm64"),
    "macos-x64": ("macosx_10_15_x86_64", "macosx_10_13_x86_64", "macosx_10_9_x86_64", "macosx_10_15_universal2"),
    "windows-x64": ("win_amd64",),
    "windows-arm64": ("win_arm64",),
}
DEFAULT_PLATFORMS = ("linux-x64", "macos-arm64", "macos-x64", "windows-x64", "windows-arm64")
#: Blender 4.2 LTS – 5.0 embed Python 3.11; Blender 5.1 embeds 3.13.
DEFAULT_PYTHONS = ("3.11", "3.13")


class BuildError(Exception):
    """A build step failed (one-line message)."""


@dataclass(frozen=True)
class Wheel:
    """A wheel file name split into its tags (PEP 427)."""

    path: Path
    name: str
    python: str
    abi: str
    platforms: tuple[str, ...]

    @classmethod
    def parse(cls, path: Path) -> Wheel | None:
        parts = path.name[: -len(".whl")].split("-") if path.name.endswith(".whl") else []
        if len(parts) not in (5, 6):
            return None
        return cls(path, parts[0].lower().replace("_", "-"), parts[-3], parts[-2], tuple(parts[-1].split(".")))

    def fits_python(self, version: str) -> bool:
        """True if the wheel imports in CPython ``version`` ("3.11")."""
        major, minor = (int(x) for x in version.split("."))
        if self.abi == f"cp{major}{minor}":
            return True
        if self.abi == "abi3":
            tags = [t for t in self.python.split(".") if t.startswith(f"cp{major}")]
            return any(int(t[3:] or 0) <= minor for t in tags)
        return self.abi == "none" and any(t in ("py3", f"py{major}{minor}") for t in self.python.split("."))

    def fits_platform(self, platform: str) -> bool:
        """True if the wheel is for the Blender ``platform`` ("linux-x64", "macos-arm64", …)."""
        return any(tag == "any" or platform in blender_platforms(tag) for tag in self.platforms)


def blender_platforms(tag: str) -> list[str]:
    """Blender platforms of one wheel platform tag (as Blender's own ``blender_ext.py`` maps them)."""
    head, _, tail = tag.partition("_")
    system = next((dst for src, dst in (("macosx", "macos"), ("manylinux", "linux"), ("musllinux", "linux"),
                                         ("linux", "linux"), ("win", "windows"))
                   if head == src or (head.startswith(src) and head[len(src):].isdigit())), head)
    machine = tail.rpartition("_")[2] if "_" in tail else tail
    if tail.endswith("x86_64") or tail == "amd64":
        machine = "x64"
    elif tail.endswith(("aarch64", "arm64")):
        machine = "arm64"
    if system == "macos" and machine == "universal2":
        return ["macos-x64", "macos-arm64"]
    return [f"{system}-{machine}"]


def package_name(requirement: str) -> str:
    return re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def select_wheels(folder: Path, platforms: list[str], pythons: list[str]) -> list[Path]:
    """One wheel of each package per (platform, Python); raise :class:`BuildError` if one lacks."""
    wheels = [w for p in sorted(folder.glob("*.whl")) if (w := Wheel.parse(p)) is not None]
    chosen: set[Path] = set()
    for requirement in PACKAGES:
        name = package_name(requirement)
        version = requirement.partition("==")[2]
        for platform in platforms:
            for python in pythons:
                fits = [w for w in wheels if w.name == name and (not version or w.path.name.split("-")[1] == version)
                        and w.fits_python(python) and w.fits_platform(platform)]
                if not fits:
                    raise BuildError(f"no {requirement} wheel for {platform} / Python {python} in {folder}")
                # prefer a wheel already chosen (universal2, abi3), then the version-specific one
                fits.sort(key=lambda w: (w.path not in chosen, w.abi == "abi3"))
                chosen.add(fits[0].path)
    return sorted(chosen, key=lambda p: p.name)


def download_wheels(folder: Path, platforms: list[str], pythons: list[str]) -> None:
    """``pip download`` the client's wheels for each platform and Python into ``folder``."""
    for platform in platforms:
        for python in pythons:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", python,
                   "-d", str(folder)]
            for tag in PLATFORM_TAGS[platform]:
                cmd += ["--platform", tag]
            proc = subprocess.run([*cmd, *PACKAGES], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
                raise BuildError(f"pip download for {platform} / Python {python} failed: "
                                 f"{lines[-1].strip() if lines else 'exit status ' + str(proc.returncode)}")


def manifest_version(manifest: Path) -> str:
    try:
        return str(tomllib.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise BuildError(f"{manifest}: cannot read the version ({exc})") from exc


def _toml_list(values: list[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f'  "{v}",\n' for v in values) + "]"


def write_manifest(manifest: Path, platforms: list[str], wheels: list[str]) -> None:
    """Set ``platforms`` and ``wheels`` in the staged manifest (removed when there are no wheels)."""
    text = manifest.read_text(encoding="utf-8")
    for key, values in (("platforms", platforms), ("wheels", wheels)):
        pattern = re.compile(rf"^{key}[ \t]*=[ \t]*\[[^\]]*\][ \t]*$", re.MULTILINE)
        if not pattern.search(text):
            raise BuildError(f"{manifest.name}: no top-level '{key} = [...]' line to fill")
        text = pattern.sub((f"{key} = {_toml_list(values)}" if values else "").replace("\\", "\\\\"), text, count=1)
    parsed = tomllib.loads(text)  # the result must stay valid TOML
    if parsed.get("wheels", []) != wheels:
        raise BuildError(f"{manifest.name}: writing the wheels list failed")
    manifest.write_text(text, encoding="utf-8")


def vendor_client(dest: Path) -> None:
    """Copy the thin client into ``dest`` (a package), refusing files that import the core."""
    dest.mkdir()
    for name in CLIENT_FILES:
        src = REPO / "foleyspace" / name
        if not src.is_file():
            raise BuildError(f"missing {src}")
        text = src.read_text(encoding="utf-8")
        if re.search(r"^\s*(from|import)\s+foleyspace\b", text, re.MULTILINE):
            raise BuildError(f"{src} imports the foleyspace package; the vendored client must import its siblings "
                             "relatively")
        (dest / name).write_text(text, encoding="utf-8")
    (dest / "__init__.py").write_text(
        '"""Vendored copy of FoleySpace\'s thin client (foleyspace/client.py, protocol.py, home.py, atomic_file.py)."""\n\n'
        "from .client import Client, ClientError, ServerUnavailable\n\n"
        '__all__ = ["Client", "ClientError", "ServerUnavailable"]\n', encoding="utf-8")


def stage(dest: Path, platforms: list[str], pythons: list[str], wheel_dir: Path | None, with_wheels: bool) -> Path:
    """Assemble the extension folder at ``dest``; returns it."""
    if not (SOURCE / "blender_manifest.toml").is_file():
        raise BuildError(f"no extension source at {SOURCE}")
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "fsclient", "wheels"))
    vendor_client(dest / "fsclient")
    wheels: list[str] = []
    if with_wheels:
        if wheel_dir is None:
            wheel_dir = dest.parent / "wheel-cache"
            wheel_dir.mkdir(exist_ok=True)
            download_wheels(wheel_dir, platforms, pythons)
        elif not wheel_dir.is_dir():
            raise BuildError(f"--wheel-dir {wheel_dir}: not a folder")
        (dest / "wheels").mkdir()
        for path in select_wheels(wheel_dir, platforms, pythons):
            shutil.copy2(path, dest / "wheels" / path.name)
            wheels.append(f"./wheels/{path.name}")
    write_manifest(dest / "blender_manifest.toml", platforms if with_wheels else [], wheels)
    return dest


def make_zip(folder: Path, zip_path: Path) -> None:
    """Zip ``folder``'s contents with the manifest at the zip root."""
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    tmp.replace(zip_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the FoleySpace Blender extension zip.")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "dist", help="output folder (default: %(default)s)")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORM_TAGS),
                        help="Blender platform to bundle wheels for (repeatable; default: "
                             f"{' '.join(DEFAULT_PLATFORMS)})")
    parser.add_argument("--python", action="append", metavar="X.Y",
                        help="CPython version of the target Blenders (repeatable; default: "
                             f"{' '.join(DEFAULT_PYTHONS)})")
    parser.add_argument("--wheel-dir", type=Path, help="take the wheels from this folder instead of pip download")
    parser.add_argument("--no-wheels", action="store_true",
                        help="bundle no wheels (for a Blender whose Python already has pyzmq and msgpack)")
    parser.add_argument("--unpacked", action="store_true",
                        help="write the extension folder OUTPUT/foleyspace_blender instead of the zip")
    args = parser.parse_args(argv)
    platforms = list(dict.fromkeys(args.platform or DEFAULT_PLATFORMS))
    pythons = list(dict.fromkeys(args.python or DEFAULT_PYTHONS))
    try:
        for python in pythons:
            if not re.fullmatch(r"3\.\d+", python):
                raise BuildError(f"--python {python!r}: expected a version like 3.11")
        version = manifest_version(SOURCE / "blender_manifest.toml")
        args.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="foleyspace-blender-") as tmp:
            folder = stage(Path(tmp) / "foleyspace_blender", platforms, pythons, args.wheel_dir, not args.no_wheels)
            if args.unpacked:
                target = args.output / "foleyspace_blender"
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(folder, target)
            else:
                target = args.output / f"foleyspace-blender-{version}.zip"
                make_zip(folder, target)
    except (BuildError, OSError) as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
