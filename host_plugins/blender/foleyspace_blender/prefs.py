"""Add-on preferences (Edit ▸ Preferences ▸ Add-ons ▸ FoleySpace) and per-scene settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty


class FOLEYSPACE_AP_preferences(bpy.types.AddonPreferences):
    """Where the server is, how to start it, where stems go."""

    bl_idname = __package__

    server_address: StringProperty(  # type: ignore[valid-type]
        name="Server address",
        description="ZeroMQ address of the FoleySpace server, e.g. tcp://127.0.0.1:5571; "
                    "blank: the address the running server recorded (or FOLEYSPACE_SERVER, or the default)",
        default="")
    server_command: StringProperty(  # type: ignore[valid-type]
        name="Server start command",
        description="Command that 'Start Server' runs (e.g. a venv's foleyspace executable plus options); "
                    "--bind is added when a server address is set",
        default="foleyspace serve")
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output folder", subtype="DIR_PATH",
        description="Folder for the stems; // is the .blend's folder (an unsaved .blend uses the temp folder)",
        default="//foleyspace_stems")
    mute_original: BoolProperty(  # type: ignore[valid-type]
        name="Mute original sound",
        description="Mute the strip's own sound when its stem is placed", default=False)

    def draw(self, context: Any) -> None:
        layout = self.layout
        for prop in ("server_address", "server_command", "output_dir", "mute_original"):
            layout.prop(self, prop)


@dataclass(frozen=True)
class DefaultPreferences:
    """Used when the add-on was registered without Blender's add-on machinery (scripts, tests)."""

    server_address: str = ""
    server_command: str = "foleyspace serve"
    output_dir: str = "//foleyspace_stems"
    mute_original: bool = False


_DEFAULTS = DefaultPreferences()


def get(context: Any) -> Any:
    """This add-on's preferences, or the defaults when it is not enabled as an add-on."""
    addon = context.preferences.addons.get(__package__)
    prefs = getattr(addon, "preferences", None) if addon is not None else None
    return prefs if prefs is not None else _DEFAULTS


class FoleySpaceSceneSettings(bpy.types.PropertyGroup):
    """Per-scene job options (saved with the .blend)."""

    label: StringProperty(  # type: ignore[valid-type]
        name="Label", description="What makes the sound (for label-aware localizers; recorded in the sidecar)",
        default="")
    scheme: EnumProperty(  # type: ignore[valid-type]
        name="Scheme", description="Localization scheme",
        items=[("fine", "Fine", "A position per frame"),
               ("coarse", "Coarse", "5×3 grid cells, a position once per second")],
        default="fine")
    hrtf: StringProperty(  # type: ignore[valid-type]
        name="HRTF", subtype="FILE_PATH",
        description="SOFA file with the head-related transfer functions (blank: the built-in set)", default="")


CLASSES = (FOLEYSPACE_AP_preferences, FoleySpaceSceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.foleyspace = bpy.props.PointerProperty(type=FoleySpaceSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.foleyspace
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
