"""FoleySpace for Blender's Video Sequencer: right-click a movie strip ▸ Spatialize Strip.

The add-on is a thin client of the local FoleySpace job server (``foleyspace serve``): it
submits the strip's visible source range, polls for the job's events with ``bpy.app.timers``
and places the binaural stem as a sound strip under the strip. See ``README.md``.
"""

from __future__ import annotations

import bpy

from . import handlers, operators, prefs, session, ui

_CLASSES = (*operators.CLASSES, *ui.CLASSES)


def register() -> None:
    """Make the session; register the preferences, scene settings, operators, panel and menu entry."""
    session.begin()
    prefs.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.SEQUENCER_MT_context_menu.append(ui.draw_context_menu)
    handlers.register()


def unregister() -> None:
    """Undo :func:`register`; the session stops its timers and closes the client (a started server
    keeps running) and is dropped."""
    handlers.unregister()
    session.end()
    bpy.types.SEQUENCER_MT_context_menu.remove(ui.draw_context_menu)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    prefs.unregister()
