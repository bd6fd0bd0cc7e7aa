"""Installing the editor integrations: the DaVinci Resolve script.

``install_resolve`` copies ``host_plugins/resolve/foleyspace_resolve.py`` into Resolve's
per-user ``Fusion/Scripts/Utility`` folder (it then appears under Workspace > Scripts) and writes
into its ``FOLEYSPACE_PATHS`` the folders from which Resolve's own Python can import
``foleyspace.client`` and its two dependencies (pyzmq, msgpack) from this installation.
Beside it goes the Lua twin (``foleyspace_resolve.lua``, for Resolve Free 21.1+, which runs Lua
but no Python scripts), with its ``M.FOLEYSPACE_CLI`` set to this installation's ``foleyspace``
command.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

from foleyspace.atomic_file import write_text_atomic
from foleyspace.errors import FoleySpaceError

#: The script in the source tree, and the name it gets in Resolve's menu.
SCRIPT_NAME = "foleyspace_resolve.py"
INSTALLED_NAME = "FoleySpace Spatialize.py"
LUA_NAME = "foleyspace_resolve.lua"
LUA_INSTALLED_NAME = "FoleySpace Spatialize (Lua).lua"
_CLI_LINE = re.compile(r'^M\.FOLEYSPACE_CLI = ".*"$', re.MULTILINE)
_UTILITY = ("Fusion", "Scripts", "Utility")
_PATHS_LINE = re.compile(r"^FOLEYSPACE_PATHS: List\[str\] = \[.*\]$", re.MULTILINE)
_PYTHON_LINE = re.compile(r'^FOLEYSPACE_PYTHON = ".*"$', re.MULTILINE)


def resolve_scripts_dir(platform: str | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """Resolve's per-user Utility scripts folder on ``platform`` (``sys.platform`` style).

    macOS ``~/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility``,
    Windows ``%APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts\\Utility``,
    Linux ``~/.local/share/DaVinciResolve/Fusion/Scripts/Utility``. The path is spelled with the
    target platform's separators (so ``str()`` of a Windows path is right on any host).
    """
    platform = platform or sys.platform
    if platform.startswith("win"):
        appdata = env.get("APPDATA")
        if not appdata:
            raise FoleySpaceError("cannot find Resolve's scripts folder: APPDATA is not set; pass --dest DIR")
        return Path(str(PureWindowsPath(appdata, "Blackmagic Design", "DaVinci Resolve", "Support", *_UTILITY)))
    home = env.get("HOME") or str(Path.home())
    if platform == "darwin":
        parts = ("Library", "Application Support", "Blackmagic Design", "DaVinci Resolve")
    elif platform.startswith(("linux", "freebsd")):
        parts = (".local", "share", "DaVinciResolve")
    else:
        raise FoleySpaceError(f"DaVinci Resolve does not run on {platform!r}; pass --dest DIR")
    return Path(str(PurePosixPath(home, *parts, *_UTILITY)))


def script_source(name: str = SCRIPT_NAME) -> Path:
    """A Resolve script shipped with this installation (package ``foleyspace.resolve_plugin``)."""
    try:
        package = importlib.import_module("foleyspace.resolve_plugin")
    except ImportError:
        package = None
    candidate = Path(package.__file__).resolve().parent / name if package and package.__file__ else None
    if candidate is None or not candidate.is_file():
        raise FoleySpaceError(f"the Resolve script ({name}) is not part of this installation; "
                              "reinstall FoleySpace")
    return candidate


def cli_command() -> str:
    """The absolute path of this installation's ``foleyspace`` command (beside its Python, as pip
    installs it), or plain ``foleyspace`` to be found on Resolve's PATH."""
    folder = Path(sys.executable).parent
    for name in ("foleyspace", "foleyspace.exe"):
        if (folder / name).is_file():
            return str(folder / name)
    return "foleyspace"


def render_lua_script(source: str, cli: str) -> str:
    """The Lua script text with ``M.FOLEYSPACE_CLI`` set to ``cli``."""
    if len(_CLI_LINE.findall(source)) != 1:
        raise FoleySpaceError("the Lua script has no single M.FOLEYSPACE_CLI line to fill in")
    quoted = cli.replace("\\", "\\\\").replace('"', '\\"')
    return _CLI_LINE.sub(lambda _: f'M.FOLEYSPACE_CLI = "{quoted}"', source)


def client_paths() -> list[str]:
    """Folders to put on ``sys.path`` so that ``foleyspace.client``, ``zmq`` and ``msgpack`` import."""
    paths: list[str] = []
    for name in ("foleyspace", "zmq", "msgpack"):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise FoleySpaceError(f"cannot install the Resolve script: {name} does not import here ({exc})") from None
        location = Path(module.__file__ or "").resolve().parent.parent
        if str(location) not in paths:
            paths.append(str(location))
    return paths


def render_script(source: str, paths: list[str]) -> str:
    """The script text with ``FOLEYSPACE_PATHS`` and ``FOLEYSPACE_PYTHON`` filled in."""
    if len(_PATHS_LINE.findall(source)) != 1 or len(_PYTHON_LINE.findall(source)) != 1:
        raise FoleySpaceError("the Resolve script has no single FOLEYSPACE_PATHS / FOLEYSPACE_PYTHON line to fill in")
    python = "{}.{}".format(*sys.version_info[:2])
    text = _PATHS_LINE.sub(lambda _: f"FOLEYSPACE_PATHS: List[str] = {paths!r}", source)
    return _PYTHON_LINE.sub(lambda _: f"FOLEYSPACE_PYTHON = \"{python}\"", text)


def _write(folder: Path, name: str, text: str) -> Path:
    """Write ``folder/name`` through a temporary name and a rename (the folder is created)."""
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text, newline="\n", mode=0o644)
    except OSError as exc:
        raise FoleySpaceError(f"cannot install the Resolve script into {folder}: {exc.strerror or exc}") from None
    return target


def install_resolve(dest: Path | None = None) -> Path:
    """Copy the Resolve scripts into ``dest`` (default :func:`resolve_scripts_dir`): the Python
    script (returned) and its Lua twin for Resolve Free.

    The folder is created if missing; each file is written to a temporary name and renamed.
    Raises :class:`FoleySpaceError` with a one-line message on failure.
    """
    folder = Path(dest).expanduser() if dest is not None else resolve_scripts_dir()
    python_text = render_script(script_source().read_text(encoding="utf-8"), client_paths())
    lua_text = render_lua_script(script_source(LUA_NAME).read_text(encoding="utf-8"), cli_command())
    target = _write(folder, INSTALLED_NAME, python_text)
    _write(folder, LUA_INSTALLED_NAME, lua_text)
    return target
