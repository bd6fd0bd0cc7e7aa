"""Server messages in Blender's terms: no command-line flags in anything a Blender user reads.

The server's messages are written for the command line (``--audio FILE``, ``--in``, ``--out``,
``--localizer motion``). :func:`for_blender` rewrites the ones a strip's job can meet into what
the add-on offers (a sound strip with a chosen video, the strip's handles, the panel's
settings: ``--localizer motion`` becomes "set Localizer to Motion in the FoleySpace panel");
any other flag left in a message is dropped from it. Commands in backticks (``foleyspace
models fetch yolo-world``: what the server's owner runs to get a model) are kept as they are.
A refused job spec names its field (``job spec: 'localizer': ...``): the panel setting is named
instead (the ``box`` fields: the strip's box keyframes; ``--box`` advice: Add Box Keyframe). Pure functions, no ``bpy`` (unit-tested outside Blender).
"""

from __future__ import annotations

import re

#: (pattern, Blender wording); the first match wins. ``{path}`` is the file the server named.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), w) for p, w in (
    (r"^(?P<path>.*?): the clip has no audio track",
     "this movie strip has no sound: add a sound strip of the sound file, choose this movie as its video "
     "(FoleySpace panel ▸ Choose Video) and spatialize the sound strip"),
    (r"^(?P<path>.*?): the audio track holds no samples",
     "the movie's sound track is empty: spatialize a sound strip with this movie as its video instead"),
    (r"^(?P<path>.*?): --audio-start .* is past the end of the file",
     "the sound strip starts past the end of its sound file ({path}); trim it to the sound"),
    (r"^--in .* past the end of the clip",
     "the strip starts past the end of its movie file; trim the strip to the movie"),
    (r"^--out .* past the end of the clip",
     "the strip ends past the end of its movie file; trim the strip to the movie"),
    (r"^--in .* is negative", "the strip starts before its movie; trim the strip to the movie"),
    # the classic localizer with a label that names neither people nor a face (spec check, localizer)
    (r"'localizer': 'classic' needs a label naming people or a face|the classic localizer finds people or faces",
     "Localizer Classic finds people or faces: set Label to person or face in the FoleySpace panel"),
    # the diffusion renderer's settings without its checkpoint (spec checks renderer, diffusion_schedule, seed)
    (r"'renderer': 'diffusion' needs a trained checkpoint",
     "Renderer Diffusion needs a Checkpoint: choose a trained checkpoint file in the FoleySpace panel"),
    (r"'(?:diffusion_schedule|seed)': is a setting of the diffusion renderer: give its checkpoint",
     "Diffusion Steps and Seed are settings of Renderer Diffusion: set Renderer to Diffusion and choose its "
     "Checkpoint in the FoleySpace panel"),
    # the measured HRTF's settings without one (spec check hrtf_interp, hrtf_directions)
    (r"'hrtf_(?:interp|directions)': applies to measured HRIRs",
     "HRTF Interpolation and HRTF Directions apply to a measured HRTF: set HRTF in the FoleySpace panel (a SOFA "
     "file or a fetched set such as hutubs:96)"),
))

#: The panel's name of each job-spec option and CLI flag it can meet, and of the backends'
#: names (kept here so this module needs nothing else of the add-on).
SETTINGS = {"localizer": "Localizer", "depth": "Depth", "vocab": "Vocabulary", "detect_every": "Detect Every",
            "depth_model": "Depth Model", "label": "Label", "scheme": "Scheme", "hrtf": "HRTF", "preview": "Preview",
            "renderer": "Renderer", "checkpoint": "Checkpoint", "diffusion_schedule": "Diffusion Steps",
            "diffusion_steps": "Diffusion Steps", "seed": "Seed", "hrtf_interp": "HRTF Interpolation",
            "hrtf_directions": "HRTF Directions"}
#: Job-spec fields of the strip's box keyframes.
BOX_FIELDS = ("box", "box_time_s", "more_boxes")
CHOICES = {"auto": "Auto", "yolo-world": "YOLO-World", "motion": "Motion", "depth-anything": "Depth Anything",
           "box-scale": "Box Scale", "classic": "Classic (people / faces)", "dsp": "DSP", "diffusion": "Diffusion"}

#: Flags rephrased as panel settings (before other flags are dropped).
_FLAG_RULES: tuple[tuple[re.Pattern[str], object], ...] = tuple((re.compile(p), w) for p, w in (
    # boxes are the strip's box keyframes (the panel's Add Box Keyframe)
    (r"draw a box with --box(?: [A-Z0-9,@\[\]\.]+)?", "add a box keyframe in the FoleySpace panel"),
    (r"draw a box there, e\.g\. --box [A-Z0-9,@\[\]\.]+", "add a box keyframe there in the FoleySpace panel"),
    (r"draw a --box or give a --label", "add a box keyframe or set a Label in the FoleySpace panel"),
    (r"draw (?:a|one with) --box(?: [A-Z0-9,@\[\]\.]+)?", "add a box keyframe in the FoleySpace panel"),
    (r"leave out --box or choose the seeded localizer",
     "remove the strip's box keyframes or set Localizer to Auto in the FoleySpace panel"),
    (r" ?\(--box X,Y,W,H(?:\[@TIME\])?\)", ""),
    (r"(?:use |with |pass |set |try )?--(?P<flag>localizer|depth|renderer)[ =](?P<value>[a-z][a-z0-9-]*)",
     lambda m: f"set {SETTINGS[m['flag']]} to {CHOICES.get(m['value'], m['value'])} in the FoleySpace panel"),
    (r"(?P<verb>(?:use|with|pass|set|give) )?--(?P<flag>localizer|depth|label|vocab|detect-every|depth-model|scheme"
     r"|hrtf|hrtf-interp|hrtf-directions|renderer|checkpoint|diffusion-steps|seed)(?![a-z-])(?: [A-Z][A-Z0-9|:]*\b)?",
     lambda m: f"{('with ' if m['verb'] == 'with ' else 'use ') if m['verb'] else ''}the {SETTINGS[m['flag'].replace('-', '_')]} setting in the "
               "FoleySpace panel"),
    (r"--device\b", "the server's device"),  # set where the server starts, not in Blender
))
_FLAG = re.compile(r"[;,(]?\s*(pass |use |with |see |give )?--[a-z][a-z0-9-]*( [A-Z][A-Z0-9,@\[\]]*)?\)?")
#: A refused job spec: ``job spec: 'FIELD': PROBLEM`` (the server's bad_request).
_SPEC = re.compile(r"^(?:job spec: )?'(?P<field>[a-z_]+)': (?P<problem>.*)$")
_BACKEND = re.compile(r"^'(?P<name>[^']+)': (?P<why>.*)$")
_UNKNOWN = re.compile(r"^'(?P<name>[^']+)' is unknown")


def _flags(text: str) -> str:
    """Rephrase or drop the CLI flags in ``text`` outside backtick-quoted commands."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):  # the even parts are outside backticks
        part = parts[i]
        if "--" not in part:
            continue
        for pattern, wording in _FLAG_RULES:
            part = pattern.sub(wording, part)  # type: ignore[arg-type]
        part = _FLAG.sub("", part)
        parts[i] = re.sub(r"\s*,(\s*,)+", ",", part)
    return "".join(parts).strip(" ;,")


def _spec(field: str, problem: str) -> str:
    """A refused job-spec field in the panel's terms."""
    if field in BOX_FIELDS:
        return f"the strip's box keyframes: {problem}"
    setting = SETTINGS.get(field)
    if setting is None:
        return f"the job spec's {field!r}: {problem}"
    if field in ("localizer", "depth", "renderer"):
        m = _UNKNOWN.match(problem)
        if m:
            return (f"{CHOICES.get(m['name'], m['name'])} ({setting}): the FoleySpace server does not offer it; "
                    f"update the server, or choose another {setting} in the FoleySpace panel")
        m = _BACKEND.match(problem)
        if m:
            return (f"{CHOICES.get(m['name'], m['name'])} ({setting}) is not available on the FoleySpace server "
                    f"(choose another {setting}, or Auto, in the FoleySpace panel): {m['why']}")
    if problem.startswith(("is ", "must ")):
        return f"the {setting} setting {problem}"
    return f"the {setting} setting: {problem}"


def for_blender(message: str) -> str:
    """``message`` (one line from the server) reworded for a Blender user; never names a CLI flag."""
    text = " ".join(str(message).split())
    for pattern, wording in _RULES:
        m = pattern.search(text)
        if m:
            return wording.format(path=m.groupdict().get("path") or "")
    m = _SPEC.match(text)
    if m:
        text = _spec(m["field"], m["problem"])
    if "--" in text:
        text = _flags(text)
    return text
