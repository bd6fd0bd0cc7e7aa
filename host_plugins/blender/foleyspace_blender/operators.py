"""Operators: Spatialize Strip, Choose Video, Add/Remove Box Keyframe, Check Server, Start Server, Cancel.

Every error is reported as one line (``self.report({'ERROR'}, ...)``) and shown in the panel;
no operator raises.
"""

from __future__ import annotations

import os
from typing import Any

import bpy
from bpy.props import IntProperty, StringProperty

from . import boxes, compat, jobs, prefs, server, session
from .placement import PlacementError
from .server import ClientError
from .session import one_line
from .source import VIDEO_PROP, box_strip, keyframe_time, keyframes_of


def active_strip(context: Any) -> Any | None:
    """The active strip of the sequencer's scene, or None."""
    ed = compat.editor(compat.sequencer_scene(context))
    return getattr(ed, "active_strip", None) if ed is not None else None


def _fail(op: bpy.types.Operator, message: str) -> set[str]:
    session.current().set_message(message, error=True)
    op.report({"ERROR"}, message)
    return {"CANCELLED"}


class FOLEYSPACE_OT_spatialize_strip(bpy.types.Operator):
    """Make a binaural stem that follows the on-screen object of the active strip's visible range"""

    bl_idname = "foleyspace.spatialize_strip"
    bl_label = "Spatialize Strip"
    bl_options = {"REGISTER"}  # noqa: RUF012 - Blender reads a plain set

    @classmethod
    def poll(cls, context: Any) -> bool:
        strip = active_strip(context)
        if strip is None:
            cls.poll_message_set("No active strip")
            return False
        if strip.type == "MOVIE":
            return True
        if strip.type == "SOUND":
            if strip.get(VIDEO_PROP):
                return True
            cls.poll_message_set("Choose a video for this sound strip in the FoleySpace panel")
            return False
        cls.poll_message_set("The active strip is not a movie or sound strip")
        return False

    def execute(self, context: Any) -> set[str]:
        scene = compat.sequencer_scene(context)
        strip = active_strip(context)
        try:
            job = jobs.submit(session.current(), scene, strip, scene.foleyspace, prefs.get(context))
        except (PlacementError, ClientError) as exc:
            return _fail(self, one_line(exc))
        except OSError as exc:
            return _fail(self, f"cannot submit: {one_line(exc)}")
        self.report({"INFO"}, f"FoleySpace job {job.id} queued for {job.strip}")
        return {"FINISHED"}


class FOLEYSPACE_OT_choose_video(bpy.types.Operator):
    """Choose the video whose on-screen object the active sound strip follows"""

    bl_idname = "foleyspace.choose_video"
    bl_label = "Choose Video"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 - Blender reads a plain set

    filepath: StringProperty(name="Video", subtype="FILE_PATH", default="")  # type: ignore[valid-type]
    filter_movie: bpy.props.BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: Any) -> bool:
        strip = active_strip(context)
        return strip is not None and strip.type == "SOUND"

    def invoke(self, context: Any, event: Any) -> set[str]:
        strip = active_strip(context)
        self.filepath = compat.abspath(str(strip.get(VIDEO_PROP, "") or "")) or compat.strip_media_path(strip)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        strip = active_strip(context)
        path = compat.abspath(self.filepath)
        if not path or not os.path.isfile(path):
            return _fail(self, f"no such video file: {self.filepath or '(none)'}")
        strip[VIDEO_PROP] = bpy.path.relpath(path) if bpy.data.filepath else path
        session.current().set_message(f"{strip.name}: video {os.path.basename(path)}")
        return {"FINISHED"}


class FOLEYSPACE_OT_add_box_keyframe(bpy.types.Operator):
    """Store the box X, Y, W, H (movie display pixels) as the object's keyframe at the movie frame shown at the current frame"""

    bl_idname = "foleyspace.add_box_keyframe"
    bl_label = "Add Box Keyframe"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 - Blender reads a plain set

    @classmethod
    def poll(cls, context: Any) -> bool:
        if box_strip(active_strip(context)) is None:
            cls.poll_message_set("Select a movie strip")
            return False
        return True

    def execute(self, context: Any) -> set[str]:
        scene = compat.sequencer_scene(context)
        strip = active_strip(context)
        movie = box_strip(strip)
        settings = scene.foleyspace
        box = (settings.box_x, settings.box_y, settings.box_w, settings.box_h)
        try:
            t = keyframe_time(scene, strip, int(scene.frame_current))
            keyframes, replaced = boxes.add(keyframes_of(movie), t, box)
        except PlacementError as exc:
            return _fail(self, one_line(exc))
        movie[boxes.BOXES_PROP] = boxes.dump(keyframes)
        text = f"{movie.name}: box keyframe at {t:.3f} s {'replaced' if replaced else 'added'} ({len(keyframes)} in all)"
        session.current().set_message(text)
        self.report({"INFO"}, text)
        return {"FINISHED"}


class FOLEYSPACE_OT_remove_box_keyframe(bpy.types.Operator):
    """Remove a box keyframe of the active movie strip (all of them when no index is given)"""

    bl_idname = "foleyspace.remove_box_keyframe"
    bl_label = "Remove Box Keyframe"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 - Blender reads a plain set

    index: IntProperty(name="Keyframe", description="Which keyframe (in time order); -1: all", default=-1)  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: Any) -> bool:
        return bool(keyframes_of(active_strip(context)))

    def execute(self, context: Any) -> set[str]:
        movie = box_strip(active_strip(context))
        keyframes = keyframes_of(movie)
        if self.index >= len(keyframes):
            return _fail(self, f"no box keyframe {self.index + 1} on strip {movie.name!r}")
        if self.index < 0:
            keyframes = []
        else:
            keyframes.pop(self.index)
        if keyframes:
            movie[boxes.BOXES_PROP] = boxes.dump(keyframes)
        elif boxes.BOXES_PROP in movie:
            del movie[boxes.BOXES_PROP]
        session.current().set_message(f"{movie.name}: {len(keyframes)} box keyframe(s) left")
        return {"FINISHED"}


class FOLEYSPACE_OT_check_server(bpy.types.Operator):
    """Ask the FoleySpace server whether it runs"""

    bl_idname = "foleyspace.check_server"
    bl_label = "Check Server"

    def execute(self, context: Any) -> set[str]:
        s = session.current()
        address = prefs.get(context).server_address.strip()
        if not server.check_server(s, address):
            return _fail(self, s.server_text + "; use Start Server or run `foleyspace serve`")
        self.report({"INFO"}, s.server_text)
        return {"FINISHED"}


class FOLEYSPACE_OT_start_server(bpy.types.Operator):
    """Start the FoleySpace server with the command set in the add-on preferences"""

    bl_idname = "foleyspace.start_server"
    bl_label = "Start Server"

    def execute(self, context: Any) -> set[str]:
        s, p = session.current(), prefs.get(context)
        address = p.server_address.strip()
        if server.check_server(s, address, timeout_s=0.3):
            return _fail(self, f"a server already answers: {s.server_text}")
        proc = s.server_proc
        if proc is not None and proc.poll() is None:
            return _fail(self, f"the server started from Blender (pid {proc.pid}) is still starting")
        try:
            proc = server.start_server(s, p.server_command, address)
        except PlacementError as exc:
            return _fail(self, one_line(exc))
        self.report({"INFO"}, f"starting the FoleySpace server (pid {proc.pid}, log {s.server_log})")
        return {"FINISHED"}


class FOLEYSPACE_OT_cancel(bpy.types.Operator):
    """Cancel a FoleySpace job (all of this session's when no job is given)"""

    bl_idname = "foleyspace.cancel"
    bl_label = "Cancel"

    job: StringProperty(name="Job", default="")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: Any) -> bool:
        return bool(session.current().jobs)

    def execute(self, context: Any) -> set[str]:
        s = session.current()
        if self.job and self.job not in s.jobs:
            return _fail(self, f"no running job {self.job}")
        try:
            asked = jobs.cancel(s, self.job or None)
        except ClientError as exc:
            return _fail(self, f"cancel: {one_line(exc)}")
        self.report({"INFO"}, f"cancelling {len(asked)} job(s)")
        return {"FINISHED"}


CLASSES = (FOLEYSPACE_OT_spatialize_strip, FOLEYSPACE_OT_choose_video, FOLEYSPACE_OT_add_box_keyframe,
           FOLEYSPACE_OT_remove_box_keyframe, FOLEYSPACE_OT_check_server, FOLEYSPACE_OT_start_server,
           FOLEYSPACE_OT_cancel)
