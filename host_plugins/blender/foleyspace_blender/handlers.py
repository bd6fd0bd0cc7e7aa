"""File handlers (``bpy.app.handlers``, persistent): a loaded file re-adopts its stored jobs, a
save stores the open file's pending jobs and rebinds them to the file's new path."""

from __future__ import annotations

import logging
from typing import Any

import bpy
from bpy.app.handlers import persistent

from . import binding, jobs, prefs, session

log = logging.getLogger(__name__)


def _address() -> str:
    return str(prefs.get(bpy.context).server_address).strip()


@persistent
def load_post(*_args: Any) -> None:
    """After a file loads: park the previous file's jobs, adopt this file's and follow them."""
    try:
        jobs.on_load(session.current(), _address())
    except Exception:  # noqa: BLE001 - a handler must not break file loading
        log.exception("FoleySpace: re-adopting the file's jobs failed")


@persistent
def save_pre(*_args: Any) -> None:
    """Before a save: store the open file's pending jobs in its scenes."""
    try:
        jobs.on_save(session.current())
    except Exception:  # noqa: BLE001 - a handler must not break saving
        log.exception("FoleySpace: storing the pending jobs failed")


@persistent
def save_post(*_args: Any) -> None:
    """After a save: the jobs belong to the file's (maybe new) path."""
    try:
        jobs.after_save(session.current())
    except Exception:  # noqa: BLE001 - a handler must not break saving
        log.exception("FoleySpace: rebinding the jobs to the saved file failed")


_HANDLERS = (("load_post", load_post), ("save_pre", save_pre), ("save_post", save_post))


def register() -> None:
    """Add the handlers (once) and bind the session to the open file."""
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn not in handlers:
            handlers.append(fn)
    try:
        session.current().file_key = binding.file_key()
    except AttributeError:  # bpy.data is restricted while Blender starts: set by load_post
        pass


def unregister() -> None:
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        while fn in handlers:
            handlers.remove(fn)
