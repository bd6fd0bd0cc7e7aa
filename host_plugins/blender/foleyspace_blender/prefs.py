"""Add-on preferences (Edit ▸ Preferences ▸ Add-ons ▸ FoleySpace) and per-scene settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .backends import (
    DEFAULTS,
    DEPTH_MODELS,
    DEPTHS,
    DIFFUSION_STEPS,
    HRTF_DIRECTIONS,
    HRTF_INTERPS,
    LOCALIZERS,
    RENDERERS,
    VOCABULARIES,
)


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
        name="Label",
        description="What makes the sound, e.g. \"dog\"; several words for the same object separated by commas "
                    "(\"dog, puppy\"). The YOLO-World localizer detects it in every frame; blank: YOLO-World "
                    "follows the best-scoring label of the Vocabulary. The Classic localizer needs person "
                    "or face (or a synonym). Recorded in the sidecar",
        default="", maxlen=200)
    localizer: EnumProperty(  # type: ignore[valid-type]
        name="Localizer", description="How the server finds the sounding object in the picture",
        items=LOCALIZERS, default=DEFAULTS["localizer"])
    depth: EnumProperty(  # type: ignore[valid-type]
        name="Depth", description="How the server measures the object's distance",
        items=DEPTHS, default=DEFAULTS["depth"])
    vocab: EnumProperty(  # type: ignore[valid-type]
        name="Vocabulary",
        description="With YOLO-World and a blank Label: every label of this list is scored over the strip and "
                    "the best one is followed",
        items=VOCABULARIES, default=DEFAULTS["vocab"])
    detect_every: IntProperty(  # type: ignore[valid-type]
        name="Detect Every", description="YOLO-World: detect every N-th analysis frame and track in between "
                                         "(faster; 1 = every frame)",
        min=1, max=250, default=DEFAULTS["detect_every"], subtype="NONE")
    depth_model: EnumProperty(  # type: ignore[valid-type]
        name="Depth Model", description="Depth Anything: which model (the server must have it); metric models "
                                        "measure metres",
        items=DEPTH_MODELS, default=DEFAULTS["depth_model"])
    scheme: EnumProperty(  # type: ignore[valid-type]
        name="Scheme", description="Localization scheme",
        items=[("fine", "Fine", "A position per frame"),
               ("coarse", "Coarse", "5×3 grid cells, a position once per second")],
        default="fine")
    hrtf: StringProperty(  # type: ignore[valid-type]
        name="HRTF", subtype="FILE_PATH",
        description="Measured head-related transfer functions: a SOFA file, or a set fetched on the server's "
                    "machine (foleyspace hrtf fetch) named SET:SUBJECT, e.g. hutubs:96 or sadie:H3 "
                    "(blank: the built-in spherical head)", default="")
    hrtf_interp: EnumProperty(  # type: ignore[valid-type]
        name="HRTF Interpolation", description="With an HRTF: how directions between the measured ones are made",
        items=HRTF_INTERPS, default=DEFAULTS["hrtf_interp"])
    hrtf_directions: EnumProperty(  # type: ignore[valid-type]
        name="HRTF Directions", description="With an HRTF: which of its measured directions are used",
        items=HRTF_DIRECTIONS, default=DEFAULTS["hrtf_directions"])
    renderer: EnumProperty(  # type: ignore[valid-type]
        name="Renderer", description="How the server makes the binaural sound",
        items=RENDERERS, default=DEFAULTS["renderer"])
    checkpoint: StringProperty(  # type: ignore[valid-type]
        name="Checkpoint", subtype="FILE_PATH",
        description="Renderer Diffusion: the trained checkpoint file (// is the .blend's folder); the server must "
                    "be able to read it", default=DEFAULTS["checkpoint"])
    diffusion_schedule: EnumProperty(  # type: ignore[valid-type]
        name="Diffusion Steps", description="Renderer Diffusion: how many sampling steps",
        items=DIFFUSION_STEPS, default=DEFAULTS["diffusion_schedule"])
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed", description="Renderer Diffusion: the sampler's seed (the same seed gives the same stem)",
        min=0, default=DEFAULTS["seed"])
    preview: BoolProperty(  # type: ignore[valid-type]
        name="Preview",
        description="Also write <stem>.preview.mp4 beside the stem: the strip's range with the stem as its sound "
                    "and the tracked box drawn, to check the stem by eye and ear",
        default=False)
    # the box that "Add Box Keyframe" stores, in the movie's display pixels (the picture as a player shows it)
    box_x: FloatProperty(  # type: ignore[valid-type]
        name="X", description="Left edge of the box around the object, in the movie's display pixels",
        default=0.0, precision=1, step=100)
    box_y: FloatProperty(  # type: ignore[valid-type]
        name="Y", description="Top edge of the box around the object, in the movie's display pixels (down +)",
        default=0.0, precision=1, step=100)
    box_w: FloatProperty(  # type: ignore[valid-type]
        name="W", description="Width of the box, in the movie's display pixels",
        default=64.0, min=1.0, precision=1, step=100)
    box_h: FloatProperty(  # type: ignore[valid-type]
        name="H", description="Height of the box, in the movie's display pixels",
        default=64.0, min=1.0, precision=1, step=100)


CLASSES = (FOLEYSPACE_AP_preferences, FoleySpaceSceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.foleyspace = bpy.props.PointerProperty(type=FoleySpaceSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.foleyspace
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
