"""The Sequencer sidebar panel (category "FoleySpace") and the strip context-menu entry."""

from __future__ import annotations

import os
from typing import Any

import bpy

from . import backends, boxes, compat, prefs, session
from .jobs import PREVIEW_PROP
from .operators import (
    FOLEYSPACE_OT_add_box_keyframe,
    FOLEYSPACE_OT_cancel,
    FOLEYSPACE_OT_check_server,
    FOLEYSPACE_OT_choose_video,
    FOLEYSPACE_OT_remove_box_keyframe,
    FOLEYSPACE_OT_spatialize_strip,
    FOLEYSPACE_OT_start_server,
    active_strip,
)
from .placement import PlacementError
from .session import one_line
from .source import VIDEO_PROP, box_strip, describe, keyframes_of


class SEQUENCER_PT_foleyspace(bpy.types.Panel):
    """Server status, job options, the active strip's range and the running jobs."""

    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "FoleySpace"
    bl_label = "FoleySpace"

    def draw(self, context: Any) -> None:
        layout = self.layout
        s = session.current()
        scene = compat.sequencer_scene(context)

        box = layout.box()
        icon = {True: "CHECKMARK", False: "ERROR", None: "QUESTION"}[s.server_ok]
        box.label(text=s.server_text, icon=icon)
        row = box.row(align=True)
        row.operator(FOLEYSPACE_OT_check_server.bl_idname, icon="FILE_REFRESH")
        row.operator(FOLEYSPACE_OT_start_server.bl_idname, icon="PLAY")

        settings = getattr(scene, "foleyspace", None)
        if settings is not None:
            col = layout.column()
            col.prop(settings, "label")
            col.prop(settings, "scheme")
            col.prop(settings, "hrtf")
            if settings.hrtf.strip() or backends.hrtf_refusal(settings):  # shown to put them back, too
                col.prop(settings, "hrtf_interp")
                col.prop(settings, "hrtf_directions")
            col.prop(settings, "preview")
            draw_models(layout, settings, s.capabilities)
        p = prefs.get(context)
        if isinstance(p, bpy.types.AddonPreferences):
            layout.prop(p, "mute_original")

        strip = active_strip(context)
        if strip is not None:
            box = layout.box()
            box.label(text=f"{strip.name} ({strip.type.lower()})", icon="SEQUENCE")
            if strip.type == "SOUND":
                video = str(strip.get(VIDEO_PROP, "") or "")
                box.label(text=f"Video: {os.path.basename(video) if video else 'none'}")
                box.operator(FOLEYSPACE_OT_choose_video.bl_idname, icon="FILE_MOVIE")
            src = None
            try:
                src = describe(scene, strip)
                box.label(text=f"Source {src.start_s:.2f}–{src.end_s:.2f} s, "
                               f"frames {src.span.left}–{src.span.right}")
            except PlacementError as exc:
                box.label(text=one_line(exc), icon="INFO")
            preview = str(strip.get(PREVIEW_PROP, "") or "")
            if preview:
                box.label(text=f"Preview: {os.path.basename(preview)}", icon="FILE_MOVIE")
            if settings is not None and box_strip(strip) is not None:
                draw_box_keyframes(layout, settings, strip, src)
        layout.operator(FOLEYSPACE_OT_spatialize_strip.bl_idname, icon="OUTLINER_OB_SPEAKER")

        if s.jobs:
            box = layout.box()
            for job in s.jobs.values():
                row = box.row()
                row.label(text=f"{job.strip}: {job.progress}")
                op = row.operator(FOLEYSPACE_OT_cancel.bl_idname, text="", icon="X")
                op.job = job.id
        if s.message:
            layout.label(text=s.message, icon="ERROR" if s.message_is_error else "INFO")


def draw_box_keyframes(layout: Any, settings: Any, strip: Any, src: Any) -> None:
    """The movie strip's box keyframes (source seconds, display pixels) with remove buttons, and
    the box that Add Box Keyframe stores at the current frame."""
    box = layout.box()
    keyframes = keyframes_of(strip)
    box.label(text=f"Box Keyframes ({len(keyframes)})", icon="SELECT_SET")
    for i, k in enumerate(keyframes):
        row = box.row()
        outside = src is not None and not boxes.in_range(k, src.start_s, src.end_s)
        row.label(text=k.text() + ("  (outside the strip: not sent)" if outside else ""))
        op = row.operator(FOLEYSPACE_OT_remove_box_keyframe.bl_idname, text="", icon="X")
        op.index = i
    row = box.row(align=True)
    for prop in ("box_x", "box_y", "box_w", "box_h"):
        row.prop(settings, prop)
    box.operator(FOLEYSPACE_OT_add_box_keyframe.bl_idname, icon="KEYFRAME")
    if keyframes and settings.localizer != "auto":
        for i, line in enumerate(backends.wrap(
                f"The seeded tracker follows the boxes: set Localizer to Auto (now "
                f"{backends.choice_name('localizer', settings.localizer)}) or remove the box keyframes")):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def draw_models(layout: Any, settings: Any, capabilities: dict) -> None:
    """The model settings (the diffusion ones with Renderer Diffusion), and what the last server
    check said of them (a chosen model the server lacks: how to get it; Auto without the model:
    what it uses instead) or what the server would refuse."""
    box = layout.box()
    col = box.column()
    col.prop(settings, "localizer")
    if settings.localizer in ("auto", "yolo-world"):
        sub = col.column()
        sub.active = not settings.label.strip()  # a Label names the object: no vocabulary is scored
        sub.prop(settings, "vocab")
        col.prop(settings, "detect_every")
    col.prop(settings, "depth")
    if settings.depth in ("auto", "depth-anything"):
        col.prop(settings, "depth_model")
    col.prop(settings, "renderer")
    if settings.renderer == "diffusion":
        for prop in ("checkpoint", "diffusion_schedule", "seed"):
            col.prop(settings, prop)
    for text, is_error in backends.panel_notes(settings, capabilities):
        for i, line in enumerate(backends.wrap(text)):
            box.label(text=line, icon=("ERROR" if is_error else "INFO") if i == 0 else "BLANK1")


def draw_context_menu(self: Any, context: Any) -> None:
    """Append "Spatialize Strip" to the sequencer's strip context menu."""
    self.layout.separator()
    self.layout.operator(FOLEYSPACE_OT_spatialize_strip.bl_idname, icon="OUTLINER_OB_SPEAKER")


CLASSES = (SEQUENCER_PT_foleyspace,)
