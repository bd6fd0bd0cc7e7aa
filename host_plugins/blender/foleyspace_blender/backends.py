"""The model settings of the panel — Localizer, Depth, Vocabulary, Detect Every, Depth Model,
Renderer, Checkpoint, Diffusion Steps, Seed, and the measured HRTF's Interpolation and
Directions: their choices, the job options they send, what the server would refuse, and what
its ``hello`` says of them.

The identifiers are the names of the job spec and the server protocol (docs/protocol.md, "Job
spec"): ``localizer`` auto | yolo-world | motion | classic, ``depth`` auto | depth-anything |
box-scale, ``renderer`` auto | dsp | diffusion, ``diffusion_schedule`` standard | fast,
``hrtf_interp`` nearest | linear | aligned, ``hrtf_directions`` all | fine | coarse.
Pure functions, no ``bpy`` (unit-tested outside Blender).
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable

from .messages import SETTINGS as SETTING_NAMES
from .messages import for_blender

#: (identifier = the job-spec name, panel name, tooltip), as Blender's EnumProperty takes them.
LOCALIZERS = [
    ("auto", "Auto", "YOLO-World when the server has its weights, else Motion"),
    ("yolo-world", "YOLO-World", "Open-vocabulary detector: finds the object named in Label (or the best label of "
                                 "the Vocabulary) in every frame; the server needs its weights"),
    ("motion", "Motion", "Follows the main moving object (no model)"),
    ("classic", "Classic (people / faces)", "OpenCV's bundled people (HOG) and face detectors, no download: "
                                            "set Label to person or face"),
]
DEPTHS = [
    ("auto", "Auto", "Depth Anything when the server has the model, else Box Scale"),
    ("depth-anything", "Depth Anything", "Depth Anything V2 monocular depth; the server needs the model"),
    ("box-scale", "Box Scale", "Distance from the size of the object's box (no model)"),
]
VOCABULARIES = [
    ("coco", "COCO", "80 everyday objects (people, vehicles, animals)"),
    ("imagenet", "ImageNet", "1000 object classes"),
    ("vggsound", "VGGSound", "309 sound-source classes"),
    ("audioset", "AudioSet", "527 AudioSet sound classes"),
]
DEPTH_MODELS = [
    ("small", "Small", "Depth Anything V2 Small (relative depth)"),
    ("base", "Base", "Depth Anything V2 Base (relative depth)"),
    ("large", "Large", "Depth Anything V2 Large (relative depth)"),
    ("metric-indoor-small", "Metric Indoor Small", "Distances in metres, indoor scenes"),
    ("metric-outdoor-small", "Metric Outdoor Small", "Distances in metres, outdoor scenes"),
    ("metric-indoor-large", "Metric Indoor Large", "Distances in metres, indoor scenes"),
    ("metric-outdoor-large", "Metric Outdoor Large", "Distances in metres, outdoor scenes"),
]
RENDERERS = [
    ("auto", "Auto", "The server's choice: DSP (the diffusion renderer needs a Checkpoint: choose Diffusion)"),
    ("dsp", "DSP", "HRTF convolution along the object's path (no model)"),
    ("diffusion", "Diffusion", "The trained binaural diffusion model (paper §III-D): needs a Checkpoint file on the "
                               "server's machine and torch there; slow without a GPU"),
]
DIFFUSION_STEPS = [
    ("standard", "Standard (50)", "The checkpoint's 50 sampling steps, as the paper"),
    ("fast", "Fast (6)", "DiffWave's 6-step fast sampling: much quicker, a little less faithful"),
]
HRTF_INTERPS = [
    ("nearest", "Nearest", "The nearest measured direction"),
    ("linear", "Linear", "A plain mix of the three measured directions around"),
    ("aligned", "Aligned", "That mix with their arrival times aligned (no comb filtering)"),
]
HRTF_DIRECTIONS = [
    ("all", "All", "Every measured direction"),
    ("fine", "Fine", "The paper's frontal fine set: |azimuth| ≤ 90°, |elevation| ≤ 40°"),
    ("coarse", "Coarse", "The paper's 15 coarse directions"),
]
#: The server's default of each setting: a setting at its default is not sent.
DEFAULTS: dict[str, Any] = {"localizer": "auto", "depth": "auto", "vocab": "coco", "detect_every": 1,
                            "depth_model": "small", "renderer": "auto", "checkpoint": "",
                            "diffusion_schedule": "standard", "seed": 0, "hrtf_interp": "aligned",
                            "hrtf_directions": "all"}
#: The measured HRTF sets the server fetches (``SET:SUBJECT``, e.g. ``hutubs:96``). A copy of the
#: keys of CATALOG in foleyspace/hrtf/catalog.py (the source of truth); tests/test_blender.py
#: asserts they match.
HRTF_SETS = ("hutubs", "sadie")
#: The model each kind's ``auto`` prefers, and what it falls back to (panel names).
AUTO_PREFERS = {"localizer": ("yolo-world", "Motion"), "depth": ("depth-anything", "Box Scale")}
#: Words of a Label that the Classic localizer finds, as people or as a face. A copy of
#: PEOPLE_WORDS / FACE_WORDS in foleyspace/localize/classic.py (the source of truth; the add-on
#: vendors only the thin client, so it cannot import them); tests/test_blender.py asserts they match.
PEOPLE_WORDS = frozenset({"person", "people", "pedestrian", "pedestrians", "man", "woman", "child", "human",
                          "walker", "runner", "cyclist", "dancer", "player"})
FACE_WORDS = frozenset({"face", "faces", "speaker", "head", "talking", "talking head", "voice", "dialogue",
                        "singer", "narrator"})
_CHOICES = {"localizer": LOCALIZERS, "depth": DEPTHS, "vocab": VOCABULARIES, "depth_model": DEPTH_MODELS,
            "renderer": RENDERERS, "diffusion_schedule": DIFFUSION_STEPS, "hrtf_interp": HRTF_INTERPS,
            "hrtf_directions": HRTF_DIRECTIONS}
#: Kinds of backend the panel names (Auto or one of them), as ``hello`` lists them.
KINDS = ("localizer", "depth", "renderer")


def choice_name(setting: str, name: str) -> str:
    """The panel's name of a choice (``"yolo-world"`` → ``"YOLO-World"``); unknown names as given."""
    for ident, label, _ in _CHOICES.get(setting, ()):
        if ident == name:
            return label
    return name


def names_people_or_face(label: str) -> bool:
    """Whether a Label (synonyms separated by commas) names people or a face, as the core's
    ``classic.detector_for`` reads it."""
    return any(w.strip().lower() in PEOPLE_WORDS | FACE_WORDS for w in str(label or "").split(","))


def classic_refusal(settings: Any) -> str | None:
    """Why the server would refuse the Classic localizer with this Label (one line), or None."""
    if str(getattr(settings, "localizer", "auto")) != "classic":
        return None
    if names_people_or_face(getattr(settings, "label", "")):
        return None
    return "Localizer Classic finds people or faces: set Label to person or face in the FoleySpace panel"


def _same(path: str) -> str:
    return path


def is_hrtf_name(text: str) -> bool:
    """Whether an HRTF setting names a fetched set (``hutubs:96``, ``sadie:H3``) rather than a file,
    as the core's ``catalog.is_name`` reads it."""
    head, sep, tail = str(text).strip().partition(":")
    return bool(sep) and head.lower() in HRTF_SETS and "/" not in tail and "\\" not in tail


def hrtf_option(text: str, abspath: Callable[[str], str] = _same) -> str:
    """The job option ``hrtf`` of the HRTF setting: a set name as typed, a file made absolute by
    ``abspath`` (``//`` = beside the .blend), ``""`` when blank."""
    text = str(text or "").strip()
    if not text or is_hrtf_name(text):
        return text
    return abspath(text)


def diffusion_refusal(settings: Any) -> str | None:
    """Why the server would refuse Renderer Diffusion as set (one line), or None."""
    if str(getattr(settings, "renderer", "auto")) != "diffusion":
        return None
    if str(getattr(settings, "checkpoint", "") or "").strip():
        return None
    return "Renderer Diffusion needs a Checkpoint: choose a trained checkpoint file in the FoleySpace panel"


def hrtf_refusal(settings: Any) -> str | None:
    """Why the server would refuse HRTF Interpolation / HRTF Directions (one line): they apply
    only to a measured HRTF, so a blank HRTF with either away from its default is refused."""
    if str(getattr(settings, "hrtf", "") or "").strip():
        return None
    for key, setting in (("hrtf_interp", "HRTF Interpolation"), ("hrtf_directions", "HRTF Directions")):
        value = str(getattr(settings, key, DEFAULTS[key]))
        if value != DEFAULTS[key]:
            return (f"{setting} {choice_name(key, value)} applies to a measured HRTF: set HRTF in the FoleySpace "
                    f"panel (a SOFA file or a fetched set such as hutubs:96), or set {setting} back to "
                    f"{choice_name(key, DEFAULTS[key])}")
    return None


def refusal(settings: Any) -> str | None:
    """The first reason the server would refuse the panel's settings (one line, the panel's
    terms), or None: checked before a job is submitted."""
    return classic_refusal(settings) or diffusion_refusal(settings) or hrtf_refusal(settings)


def job_options(settings: Any, abspath: Callable[[str], str] = _same) -> dict[str, Any]:
    """The job options of the model settings: only those not at the server's default, and only
    those the chosen backend reads (the server refuses a YOLO-World setting with another
    localizer; a Label leaves no vocabulary to score; the diffusion settings go with Renderer
    Diffusion, the HRTF's with an HRTF). ``abspath`` makes a file setting absolute."""
    def value(key: str) -> Any:
        return getattr(settings, key, DEFAULTS[key])

    options: dict[str, Any] = {}
    for key in KINDS:
        if value(key) != DEFAULTS[key]:
            options[key] = str(value(key))
    if value("localizer") in ("auto", "yolo-world"):
        if not str(getattr(settings, "label", "")).strip() and value("vocab") != DEFAULTS["vocab"]:
            options["vocab"] = str(value("vocab"))
        if int(value("detect_every")) != DEFAULTS["detect_every"]:
            options["detect_every"] = int(value("detect_every"))
    if value("depth") in ("auto", "depth-anything") and value("depth_model") != DEFAULTS["depth_model"]:
        options["depth_model"] = str(value("depth_model"))
    options.update(_diffusion_options(settings, value, abspath))
    if str(getattr(settings, "hrtf", "") or "").strip():
        options.update({k: str(value(k)) for k in ("hrtf_interp", "hrtf_directions") if value(k) != DEFAULTS[k]})
    return options


def _diffusion_options(settings: Any, value: Callable[[str], Any], abspath: Callable[[str], str]) -> dict[str, Any]:
    """Checkpoint, Diffusion Steps and Seed as job options: with Renderer Diffusion only."""
    checkpoint = str(value("checkpoint") or "").strip()
    if value("renderer") != "diffusion" or not checkpoint:
        return {}
    options: dict[str, Any] = {"checkpoint": abspath(checkpoint)}
    if value("diffusion_schedule") != DEFAULTS["diffusion_schedule"]:
        options["diffusion_schedule"] = str(value("diffusion_schedule"))
    if int(value("seed")) != DEFAULTS["seed"]:
        options["seed"] = int(value("seed"))
    return options


def capabilities(hello: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``{kind: {name: {available, missing?, ...}}}`` from a ``hello`` reply; ``{}`` when the
    server lists no backends (an older server: its answer to the submit decides)."""
    caps = hello.get("capabilities") if isinstance(hello, dict) else None
    listed = caps.get("backends") if isinstance(caps, dict) else None
    if not isinstance(listed, dict):
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, rows in listed.items():
        if isinstance(rows, list):
            out[str(kind)] = {str(r["name"]): r for r in rows if isinstance(r, dict) and "name" in r}
    return out


def _missing(row: dict[str, Any]) -> str:
    return for_blender(str(row.get("missing") or "it is not installed there")).rstrip(".")


def unavailable(options: dict[str, Any], caps: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """Why the server cannot run a backend the job options name (one line, the panel's terms), or
    None. ``auto`` is never refused: the server falls back to the offline backend."""
    for kind in KINDS:
        name = options.get(kind)
        if not name or name == "auto" or kind not in caps:
            continue
        setting, choice = SETTING_NAMES[kind], choice_name(kind, name)
        row = caps[kind].get(name)
        if row is None:
            return (f"{choice} ({setting}): the FoleySpace server does not offer it; update the server, "
                    f"or choose another {setting} in the FoleySpace panel")
        if not row.get("available", True):
            return (f"{choice} ({setting}) is not available on the FoleySpace server (choose another {setting}, "
                    f"or Auto, in the FoleySpace panel): {_missing(row)}")
    return None


def panel_notes(settings: Any, caps: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, bool]]:
    """Lines for the panel about the model settings, from the last ``hello``: ``(text, is_error)``.
    What the server would refuse (:func:`refusal`) and a chosen model it lacks are errors (with
    how to get it); ``Auto`` without the model says what is used instead."""
    refused = refusal(settings)
    notes: list[tuple[str, bool]] = [(refused, True)] if refused else []
    for kind in KINDS:
        name = str(getattr(settings, kind, "auto"))
        if kind not in caps:
            continue
        if name == "auto" and kind in AUTO_PREFERS:
            model, fallback = AUTO_PREFERS[kind]
            row = caps[kind].get(model)
            if row is not None and not row.get("available", True):
                notes.append((f"{SETTING_NAMES[kind]} Auto uses {fallback}: {choice_name(kind, model)} is not "
                              "available on the server (choose it to see how to get it)", False))
            continue
        why = unavailable({kind: name}, caps)
        if why:
            notes.append((why, True))
    return notes


def wrap(text: str, width: int = 60) -> list[str]:
    """``text`` as panel lines (a panel label does not wrap by itself)."""
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]
