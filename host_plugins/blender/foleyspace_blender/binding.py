"""Which .blend and which strip a job belongs to, and the jobs stored in the .blend.

* **File key**: the open .blend's absolute path, or ``unsaved:<uuid>`` for a file never saved
  (a fresh token each time an unsaved file is loaded or made). A job is placed only while the
  file with its key is open (:mod:`.jobs` parks the others).
* **Strip identity**: a uuid stored on the strip itself as the custom property
  :data:`STRIP_ID_PROP` (set at submit; it survives renames, moves and file reloads).
* **Store**: each scene keeps its pending jobs as a JSON list in the custom property
  :data:`STORE_PROP` (saved with the .blend). A reopened file re-adopts them, wherever the file
  now is, so a job that ended while Blender was closed is placed on reopen.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from typing import Any

import bpy

from . import compat
from .placement import Span
from .source import Source

log = logging.getLogger(__name__)

#: Custom strip property: the strip's stable identity (uuid hex).
STRIP_ID_PROP = "foleyspace_id"
#: Custom scene property: JSON list of the scene's pending jobs.
STORE_PROP = "foleyspace_jobs"
#: Version of a stored job record.
RECORD_VERSION = 1


def file_key(fresh_token: bool = False, previous: str | None = None) -> str:
    """The open file's key: its normalized absolute path, else an ``unsaved:`` token.

    An unsaved file keeps ``previous`` when it is already a token, unless ``fresh_token``.
    """
    path = bpy.data.filepath
    if path:
        return os.path.normcase(os.path.abspath(path))
    if previous and previous.startswith("unsaved:") and not fresh_token:
        return previous
    return f"unsaved:{uuid.uuid4().hex}"


def strip_identity(strip: Any) -> str:
    """The strip's stable identity, made and stored on the strip the first time."""
    value = strip.get(STRIP_ID_PROP)
    if not isinstance(value, str) or not value:
        value = uuid.uuid4().hex
        strip[STRIP_ID_PROP] = value
    return value


def find_strip(strip_id: str, scene_name: str) -> tuple[Any | None, Any | None]:
    """``(scene, strip)`` of the top-level strip with ``strip_id`` in any scene of the open file;
    else ``(scene named scene_name or None, None)``."""
    for scene in bpy.data.scenes:
        ed = compat.editor(scene)
        if ed is None:
            continue
        for strip in compat.top_strips(ed):
            if strip.get(STRIP_ID_PROP) == strip_id:
                return scene, strip
    return bpy.data.scenes.get(scene_name), None


# ------------------------------------------------------------------------- the store
def record(job: Any) -> dict[str, Any]:
    """A job as plain JSON data (see :func:`from_record`)."""
    src = dataclasses.asdict(job.source)
    return {"v": RECORD_VERSION, "id": job.id, "scene": job.scene, "strip": job.strip, "strip_id": job.strip_id,
            "stem": job.stem, "mute": job.mute, "preview": bool(getattr(job, "preview", False)), "source": src}


def from_record(data: dict[str, Any]) -> dict[str, Any] | None:
    """Keyword arguments of a ``StripJob`` from a stored record, or None for one not understood."""
    try:
        if data.get("v") != RECORD_VERSION:
            return None
        src = dict(data["source"])
        src["span"] = Span(**src["span"])
        return {"id": str(data["id"]), "scene": str(data["scene"]), "strip": str(data["strip"]),
                "strip_id": str(data["strip_id"]), "stem": str(data["stem"]), "mute": bool(data["mute"]),
                "preview": bool(data.get("preview", False)), "source": Source(**src)}
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("FoleySpace: a stored job is not understood (%s); skipped", exc)
        return None


def read_store(scene: Any) -> list[dict[str, Any]]:
    """The records stored in ``scene`` (an unreadable store reads as empty)."""
    raw = scene.get(STORE_PROP)
    if not raw:
        return []
    try:
        data = json.loads(str(raw))
    except ValueError:
        log.warning("FoleySpace: the job store of scene %r is not JSON; ignored", scene.name)
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def write_stores(jobs: list[Any]) -> None:
    """Store ``jobs`` (the open file's pending jobs) in their scenes; other scenes' stores are
    cleared. A job's scene is the one holding its strip, else the scene of its name."""
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        scene, _ = find_strip(job.strip_id, job.scene)
        if scene is not None:
            by_scene.setdefault(scene.name, []).append(record(job))
    for scene in bpy.data.scenes:
        records = by_scene.get(scene.name)
        if records:
            scene[STORE_PROP] = json.dumps(records)
        elif STORE_PROP in scene:
            del scene[STORE_PROP]


def stored_jobs() -> list[dict[str, Any]]:
    """Every job stored in the open file, as ``StripJob`` keyword arguments."""
    out = []
    for scene in bpy.data.scenes:
        for data in read_store(scene):
            kwargs = from_record(data)
            if kwargs is not None:
                out.append(kwargs)
    return out
