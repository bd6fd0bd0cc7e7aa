"""FoleySpace for DaVinci Resolve: binaural stems for timeline clips (Workspace > Scripts).

Run from Resolve's Workspace > Scripts menu (installed into ``Fusion/Scripts/Utility`` by
``foleyspace install resolve``). For the current video item, or for every clip on one video
track, it sends a job to the local FoleySpace server (``foleyspace serve``), waits with a
timeout, imports the stems into the media pool and places each one on a new stereo audio track
at its clip's absolute record frame. Progress and a summary go to Resolve's console
(Workspace > Console); nothing here blocks forever.

Choose what to spatialize with ``FOLEYSPACE_RESOLVE_TRACK`` (unset or ``current``: the item
under the playhead; ``N``: every clip on video track N, counted from 1) or the ``TRACK``
constant below. ``FOLEYSPACE_RESOLVE_OUTPUT`` overrides the stem folder (default
``~/FoleySpace Stems/<project name>``). The model settings — ``FOLEYSPACE_RESOLVE_LOCALIZER``
(auto | yolo-world | motion | classic: people or faces, so the label must name one), ``_DEPTH``
(auto | depth-anything | box-scale), ``_LABEL`` (default: the clip's name; empty or ``-``: none,
so YOLO-World picks from the vocabulary), ``_VOCAB``, ``_DETECT_EVERY``, ``_DEPTH_MODEL``, the
HRTF and renderer settings ``_HRTF`` (a SOFA file or a fetched set ``SET:SUBJECT``, e.g.
``hutubs:96``), ``_HRTF_INTERP``, ``_HRTF_DIRECTIONS``, ``_RENDERER`` (auto | dsp | diffusion),
``_CHECKPOINT``, ``_DIFFUSION_STEPS`` (standard | fast), ``_SEED``, or the constants below — go
into every job's options; a malformed setting, or a model the server lacks, stops the run before
anything renders (the latter with the server's word on how to get it).
``FOLEYSPACE_RESOLVE_PREVIEW=1`` (or ``PREVIEW``) asks each job for a preview movie
(``<stem>.preview.mp4`` beside the stem: the clip with the stem as its sound and the tracked box
drawn); its path is printed with the stem's. Boxes around the object (the seeded tracker's
keyframes) are not offered: Resolve's scripting API gives no way to draw or read one.

Only the standard library and ``foleyspace.client`` (pyzmq + msgpack) are imported, because
Resolve runs its own Python. The core (:func:`spatialize_timeline`) takes a ``resolve`` object
and a client, so tests drive it with a fake of Resolve's scripting API.

Source range: the subclip start (clip property ``Start``) plus ``GetLeftOffset()``, in source
frames at the clip's own frame rate (``FPS``), and the item's length in timeline frames at the
timeline rate. A retimed item is sent with its constant ``speed`` (or ``hold_s`` for a freeze
frame) when Resolve reports it consistently; a speed it cannot confirm (a ramp, an old Resolve)
is refused for that clip with the reason. A linked audio item from another recording becomes
the job's sound (``FOLEYSPACE_RESOLVE_LINKED_AUDIO=0`` turns that off). Where each of these
facts about Resolve comes from is in README.md, "What this relies on".
"""

# typing.List/Optional on purpose: this file must run (at least far enough to print how to fix the
# client import) on whichever Python Resolve uses, so no `list[str]` / `X | None` at runtime.
# ruff: noqa: UP006, UP035, UP045
import importlib
import json
import math
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

# ---------------------------------------------------------------- import of the thin client
#: Folders holding ``foleyspace``, ``zmq`` and ``msgpack``; written by ``foleyspace install resolve``.
FOLEYSPACE_PATHS: List[str] = []
#: ``major.minor`` of the Python that wrote FOLEYSPACE_PATHS (its compiled modules need the same).
FOLEYSPACE_PYTHON = ""


def _import_client() -> Tuple[Any, str]:
    """``(foleyspace.client module, "")``, or ``(None, how to fix it)``."""
    try:
        from foleyspace import client as module
        return module, ""
    except ImportError:
        pass
    for path in FOLEYSPACE_PATHS:
        if path not in sys.path:
            sys.path.append(path)
    importlib.invalidate_caches()
    try:
        from foleyspace import client as module
        return module, ""
    except ImportError as exc:
        here = "{}.{}".format(*sys.version_info[:2])
        hint = ""
        if FOLEYSPACE_PYTHON and FOLEYSPACE_PYTHON != here:
            hint = f" (it was installed for Python {FOLEYSPACE_PYTHON}; Resolve runs Python {here})"
        return None, (f"FoleySpace: cannot import the FoleySpace client in Resolve's Python {here}: {exc}{hint}. "
                      "Run `foleyspace install resolve` from the Python environment that has FoleySpace, "
                      "or install foleyspace (with pyzmq and msgpack) into the Python Resolve uses.")


_client, IMPORT_ERROR = _import_client()
if _client is not None:
    Client = _client.Client
    ClientError = _client.ClientError
    ServerUnavailable = _client.ServerUnavailable
else:  # main() prints IMPORT_ERROR; these stand-ins keep the module importable
    Client = None  # type: ignore[assignment,misc]

    class ClientError(Exception):  # type: ignore[no-redef]
        code = "error"

    class ServerUnavailable(ClientError):  # type: ignore[no-redef]
        pass

# ---------------------------------------------------------------- configuration
#: Video track to process (1-based), or None for the current video item. FOLEYSPACE_RESOLVE_TRACK wins.
TRACK: Optional[int] = None
#: Folder under which each project gets a stem folder. FOLEYSPACE_RESOLVE_OUTPUT (the stem folder itself) wins.
OUTPUT_ROOT = "~/FoleySpace Stems"
#: Longest wait for one job, in seconds (FOLEYSPACE_RESOLVE_JOB_TIMEOUT).
JOB_TIMEOUT_S = 3600.0
#: Seconds per server request attempt and attempts (FOLEYSPACE_RESOLVE_REQUEST_TIMEOUT / _RETRIES).
REQUEST_TIMEOUT_S = 3.0
REQUEST_RETRIES = 3
#: Name given to the audio tracks the script adds.
TRACK_NAME = "FoleySpace"
#: Use a linked audio item from another recording as the sound (FOLEYSPACE_RESOLVE_LINKED_AUDIO=0: off).
USE_LINKED_AUDIO = True
#: Treat clips whose speed Resolve cannot report (before 19.0.2) as playing at 100 %
#: (FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED=1). Off: such clips are refused with the reason.
ASSUME_NORMAL_SPEED = False
#: MediaPool.AppendToTimeline: True when clipInfo "endFrame" is the first source frame NOT placed
#: (the item lasts endFrame - startFrame frames). Blackmagic's README only says "endFrame
#: (float/int)"; live readback on Resolve Studio 21.0 and 21.0.4.5 by the davinci-resolve-mcp
#: project (github.com/samuelgursky/davinci-resolve-mcp issue #82, PR #80) measured it exclusive
#: ({startFrame: 6254, endFrame: 6348} -> a 94-frame item; 130 butted appends without gaps).
#: The Lua twin (foleyspace_resolve.lua) has the same constant.
END_FRAME_EXCLUSIVE = True
#: Source frames of slack when comparing a clip's source span with its length: GetSourceStartFrame
#: can read one frame off (measured); when the clip and timeline rates differ, GetSourceEndFrame is
#: one less (inclusive, measured) and the conversion floors, which costs up to one more each.
SPAN_TOLERANCE_FRAMES = 1.0
SPAN_TOLERANCE_MIXED_RATES = 2.5
#: The model backends (docs/protocol.md, "Job spec"; the same names as everywhere in FoleySpace).
#: LOCALIZER finds the object: "auto" (YOLO-World when the server has its weights, else motion),
#: "yolo-world", "motion" or "classic" (OpenCV's bundled people and face detectors, no download; the
#: label must name people or a face) (FOLEYSPACE_RESOLVE_LOCALIZER). DEPTH measures its distance: "auto",
#: "depth-anything" or "box-scale" (FOLEYSPACE_RESOLVE_DEPTH).
LOCALIZER = "auto"
DEPTH = "auto"
#: What YOLO-World looks for. None: each clip's name; "": no label, so YOLO-World scores every
#: label of VOCAB and follows the best; text: that object, synonyms separated by commas
#: ("dog, puppy") (FOLEYSPACE_RESOLVE_LABEL; empty or "-" there means no label).
LABEL: Optional[str] = None
#: YOLO-World without a label: "coco", "imagenet", "vggsound", "audioset" or an absolute file of
#: labels; "" leaves the server's default (coco) (FOLEYSPACE_RESOLVE_VOCAB).
VOCAB = ""
#: YOLO-World detects every N-th analysis frame and tracks in between; None: every frame
#: (FOLEYSPACE_RESOLVE_DETECT_EVERY, 1-250).
DETECT_EVERY: Optional[int] = None
#: Depth Anything model: "small", "base", "large", "metric-indoor-small", "metric-outdoor-small",
#: "metric-indoor-large", "metric-outdoor-large" or an absolute model folder; "": the server's
#: default (small) (FOLEYSPACE_RESOLVE_DEPTH_MODEL).
DEPTH_MODEL = ""
#: Also write each stem's preview movie, <stem>.preview.mp4 beside it (job option "preview";
#: FOLEYSPACE_RESOLVE_PREVIEW=1/0).
PREVIEW = False
#: Measured HRTF: "" (the built-in spherical head), the absolute path of a SOFA file, or a set fetched
#: on the server's machine (`foleyspace hrtf fetch`) named SET:SUBJECT, e.g. "hutubs:96" or "sadie:H3"
#: (FOLEYSPACE_RESOLVE_HRTF). With it, HRTF_INTERP ("nearest", "linear" or "aligned") and
#: HRTF_DIRECTIONS ("all", "fine" or "coarse"); "": the server's default, aligned and all
#: (FOLEYSPACE_RESOLVE_HRTF_INTERP / _HRTF_DIRECTIONS).
HRTF = ""
HRTF_INTERP = ""
HRTF_DIRECTIONS = ""
#: What makes the binaural sound: "auto" (diffusion when a CHECKPOINT is given, else dsp), "dsp" or
#: "diffusion" (FOLEYSPACE_RESOLVE_RENDERER). The diffusion renderer needs CHECKPOINT, the absolute
#: path of a trained checkpoint (FOLEYSPACE_RESOLVE_CHECKPOINT); DIFFUSION_STEPS "standard" (50) or
#: "fast" (6), "": standard (FOLEYSPACE_RESOLVE_DIFFUSION_STEPS); SEED the sampler's seed, None: 0
#: (FOLEYSPACE_RESOLVE_SEED).
RENDERER = "auto"
CHECKPOINT = ""
DIFFUSION_STEPS = ""
SEED: Optional[int] = None
#: The names each choice may take (a Resolve clip has no box, so the seeded tracker is not one).
LOCALIZERS = ("auto", "yolo-world", "motion", "classic")
#: Words of a label that the classic localizer finds, as people or as a face. A copy of
#: PEOPLE_WORDS / FACE_WORDS in foleyspace/localize/classic.py (the source of truth): this script
#: imports only foleyspace.client (Resolve's Python has no numpy/OpenCV for the core's module);
#: tests/test_resolve.py asserts the copy equals the core's lists.
PEOPLE_WORDS = frozenset({"person", "people", "pedestrian", "pedestrians", "man", "woman", "child", "human",
                          "walker", "runner", "cyclist", "dancer", "player"})
FACE_WORDS = frozenset({"face", "faces", "speaker", "head", "talking", "talking head", "voice", "dialogue",
                        "singer", "narrator"})
DEPTHS = ("auto", "depth-anything", "box-scale")
VOCABULARIES = ("coco", "imagenet", "vggsound", "audioset")
DEPTH_MODELS = ("small", "base", "large", "metric-indoor-small", "metric-outdoor-small", "metric-indoor-large",
                "metric-outdoor-large")
RENDERERS = ("auto", "dsp", "diffusion")
HRTF_INTERPS = ("nearest", "linear", "aligned")
HRTF_DIRECTION_SETS = ("all", "fine", "coarse")
DIFFUSION_SCHEDULES = ("standard", "fast")
MAX_SEED = (1 << 63) - 1
#: The sets a SET:SUBJECT HRTF name may start with: a copy of the keys of CATALOG in
#: foleyspace/hrtf/catalog.py (tests/test_resolve.py asserts the copy equals the core's).
HRTF_SETS = ("hutubs", "sadie")
#: The server's default of the HRTF and diffusion settings: not sent, and not refused without an HRTF
#: or a checkpoint.
RENDER_DEFAULTS = {"hrtf_interp": "aligned", "hrtf_directions": "all", "diffusion_steps": "standard", "seed": 0}

Log = Callable[[str], None]


class ScriptError(Exception):
    """Stops the whole run; the message is one line for the console."""


class Skip(Exception):
    """Stops one clip; the message is the reason shown in the summary."""


@dataclass
class Settings:
    """What to process and how long to wait.

    Attributes:
        track: video track to process (1-based), or None for the current video item.
        output_dir: stem folder; None means ``OUTPUT_ROOT/<project name>``.
        job_timeout_s: longest wait for one job.
        request_timeout_s, request_retries: per-request wait and attempts of the client.
        options: job ``options`` sent with every job (see docs/protocol.md).
        use_linked_audio: use a linked audio item from another recording as the sound.
        assume_normal_speed: treat clips whose speed Resolve cannot report as 100 %.
        localizer, depth, label, vocab, detect_every, depth_model: the model settings (see
            LOCALIZER ... DEPTH_MODEL above); ``label`` None sends each clip's name.
        preview: ask each job for its preview movie (job option ``preview``).
        hrtf, hrtf_interp, hrtf_directions, renderer, checkpoint, diffusion_steps, seed: the HRTF
            and renderer settings (see HRTF ... SEED above).
    """

    track: Optional[int] = TRACK
    output_dir: Optional[Path] = None
    job_timeout_s: float = JOB_TIMEOUT_S
    request_timeout_s: float = REQUEST_TIMEOUT_S
    request_retries: int = REQUEST_RETRIES
    options: Dict[str, Any] = field(default_factory=dict)
    use_linked_audio: bool = USE_LINKED_AUDIO
    assume_normal_speed: bool = ASSUME_NORMAL_SPEED
    localizer: str = LOCALIZER
    depth: str = DEPTH
    label: Optional[str] = LABEL
    vocab: str = VOCAB
    detect_every: Optional[int] = DETECT_EVERY
    depth_model: str = DEPTH_MODEL
    preview: bool = PREVIEW
    hrtf: str = HRTF
    hrtf_interp: str = HRTF_INTERP
    hrtf_directions: str = HRTF_DIRECTIONS
    renderer: str = RENDERER
    checkpoint: str = CHECKPOINT
    diffusion_steps: str = DIFFUSION_STEPS
    seed: Optional[int] = SEED

    @classmethod
    def from_env(cls, env: Optional[Dict[str, str]] = None) -> "Settings":
        """Settings from the constants above and ``FOLEYSPACE_RESOLVE_*``; ScriptError if malformed."""
        env = dict(os.environ if env is None else env)
        settings = cls()
        track = env.get("FOLEYSPACE_RESOLVE_TRACK", "").strip().lower()
        if track and track != "current":
            if not track.isdigit() or int(track) < 1:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_TRACK must be 'current' or a video track "
                                  f"number from 1, not {track!r}")
            settings.track = int(track)
        elif track == "current":
            settings.track = None
        for key, attr in (("FOLEYSPACE_RESOLVE_LINKED_AUDIO", "use_linked_audio"),
                          ("FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED", "assume_normal_speed"),
                          ("FOLEYSPACE_RESOLVE_PREVIEW", "preview")):
            if env.get(key, "").strip():
                setattr(settings, attr, _flag(key, env[key]))
        if env.get("FOLEYSPACE_RESOLVE_OUTPUT"):
            settings.output_dir = Path(env["FOLEYSPACE_RESOLVE_OUTPUT"]).expanduser()
        for key, attr, kind in (("FOLEYSPACE_RESOLVE_JOB_TIMEOUT", "job_timeout_s", float),
                                ("FOLEYSPACE_RESOLVE_REQUEST_TIMEOUT", "request_timeout_s", float),
                                ("FOLEYSPACE_RESOLVE_REQUEST_RETRIES", "request_retries", int)):
            if env.get(key):
                try:
                    value = kind(env[key])
                except ValueError:
                    value = -1
                if not (value > 0 and math.isfinite(value)):
                    raise ScriptError(f"FoleySpace: {key} must be a positive number, not {env[key]!r}")
                setattr(settings, attr, value)
        for key, attr in (("FOLEYSPACE_RESOLVE_LOCALIZER", "localizer"), ("FOLEYSPACE_RESOLVE_DEPTH", "depth"),
                          ("FOLEYSPACE_RESOLVE_VOCAB", "vocab"), ("FOLEYSPACE_RESOLVE_DEPTH_MODEL", "depth_model")):
            if env.get(key, "").strip():
                setattr(settings, attr, env[key].strip())
        if "FOLEYSPACE_RESOLVE_LABEL" in env:
            label = env["FOLEYSPACE_RESOLVE_LABEL"].strip()
            settings.label = "" if label == "-" else label
        every = _env_whole_number(env, "DETECT_EVERY", "of frames from 1 to 250")
        if every is not None:
            settings.detect_every = every
        settings.render_from_env(env)
        settings.check_models()
        return settings

    def render_from_env(self, env: Dict[str, str]) -> None:
        """The HRTF and renderer settings from ``FOLEYSPACE_RESOLVE_*`` (checked by :meth:`check_render`)."""
        for key, attr in (("HRTF", "hrtf"), ("HRTF_INTERP", "hrtf_interp"), ("HRTF_DIRECTIONS", "hrtf_directions"),
                          ("RENDERER", "renderer"), ("CHECKPOINT", "checkpoint"),
                          ("DIFFUSION_STEPS", "diffusion_steps")):
            value = env.get(f"FOLEYSPACE_RESOLVE_{key}", "").strip()
            if value:
                setattr(self, attr, value)
        seed = _env_whole_number(env, "SEED", f"from 0 to {MAX_SEED}")
        if seed is not None:
            self.seed = seed

    def check_models(self) -> None:
        """ScriptError (one line, naming the setting) for a model setting the server would refuse."""
        for key, value, names in (("LOCALIZER", self.localizer, LOCALIZERS), ("DEPTH", self.depth, DEPTHS),
                                  ("RENDERER", self.renderer, RENDERERS)):
            if value not in names:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} must be one of {', '.join(names)}, "
                                  f"not {value!r}")
        for key, value, names, what in (("VOCAB", self.vocab, VOCABULARIES, "a file of labels"),
                                        ("DEPTH_MODEL", self.depth_model, DEPTH_MODELS, "a model folder")):
            if value and value not in names and not os.path.isabs(os.path.expanduser(value)):
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} must be one of {', '.join(names)} or the "
                                  f"absolute path of {what}, not {value!r}")
        every = self.detect_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 250):
            raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number of frames from 1 "
                              f"to 250, not {every!r}")
        if self.label is not None and len(self.label) > 200:
            raise ScriptError("FoleySpace: FOLEYSPACE_RESOLVE_LABEL holds more than 200 characters")
        if self.localizer in ("motion", "classic") and (self.vocab or every is not None):
            key = "VOCAB" if self.vocab else "DETECT_EVERY"
            raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} is a setting of the yolo-world localizer, but "
                              f"FOLEYSPACE_RESOLVE_LOCALIZER is {self.localizer}")
        if self.label is not None:
            self.check_labels([""])
        if self.depth == "box-scale" and self.depth_model:
            raise ScriptError("FoleySpace: FOLEYSPACE_RESOLVE_DEPTH_MODEL is a setting of the depth-anything depth, "
                              "but FOLEYSPACE_RESOLVE_DEPTH is box-scale")
        self.check_render()

    def _given(self, attr: str) -> bool:
        """Whether an HRTF or diffusion setting is set away from the server's default."""
        value = getattr(self, attr)
        return value not in (None, "", RENDER_DEFAULTS.get(attr))

    def check_render(self) -> None:
        """ScriptError (one line, naming the setting) for an HRTF or renderer setting the server
        would refuse: a bad name, a file that is not there, a setting without what it configures."""
        for key, value, names in (("HRTF_INTERP", self.hrtf_interp, HRTF_INTERPS),
                                  ("HRTF_DIRECTIONS", self.hrtf_directions, HRTF_DIRECTION_SETS),
                                  ("DIFFUSION_STEPS", self.diffusion_steps, DIFFUSION_SCHEDULES)):
            if value and value not in names:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} must be one of {', '.join(names)}, "
                                  f"not {value!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
            raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_SEED must be a whole number from 0 to {MAX_SEED}, "
                              f"not {seed!r}")
        if self.hrtf and not is_hrtf_name(self.hrtf):
            _check_file("HRTF", self.hrtf, "a SOFA file, or a fetched set named SET:SUBJECT (hutubs:96, sadie:H3)")
        if self.checkpoint:
            _check_file("CHECKPOINT", self.checkpoint, "a trained checkpoint")
        for attr in ("hrtf_interp", "hrtf_directions"):
            if self._given(attr) and not self.hrtf:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{attr.upper()} is a setting of a measured HRTF, "
                                  "but FOLEYSPACE_RESOLVE_HRTF is not set")
        if self.renderer == "diffusion" and not self.checkpoint:
            raise ScriptError("FoleySpace: FOLEYSPACE_RESOLVE_RENDERER=diffusion needs FOLEYSPACE_RESOLVE_CHECKPOINT, "
                              "the absolute path of a trained checkpoint")
        for attr in ("checkpoint", "diffusion_steps", "seed"):
            if self._given(attr) and self.renderer == "dsp":
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{attr.upper()} is a setting of the diffusion "
                                  "renderer, but FOLEYSPACE_RESOLVE_RENDERER is dsp")
            if self._given(attr) and not self.checkpoint:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{attr.upper()} is a setting of the diffusion "
                                  "renderer: set FOLEYSPACE_RESOLVE_CHECKPOINT too")

    def render_options(self) -> Dict[str, Any]:
        """The job options of the HRTF and renderer settings not at the server's default (files
        absolute; a fetched set's name as given)."""
        options: Dict[str, Any] = {}
        if self.hrtf:
            options["hrtf"] = self.hrtf if is_hrtf_name(self.hrtf) else _absolute(self.hrtf)
            options.update({a: getattr(self, a) for a in ("hrtf_interp", "hrtf_directions") if self._given(a)})
        if self.renderer != "auto":
            options["renderer"] = self.renderer
        if self.checkpoint:
            options["checkpoint"] = _absolute(self.checkpoint)
            if self._given("diffusion_steps"):
                options["diffusion_schedule"] = self.diffusion_steps
            if self._given("seed"):
                options["seed"] = self.seed
        return options

    def label_for(self, clip_name: str) -> str:
        """The label sent for a clip: LABEL, else the clip's name ("" sends none)."""
        return (clip_name if self.label is None else self.label).strip()[:200]

    def check_labels(self, clip_names: List[str]) -> None:
        """ScriptError (one line) when the classic localizer is chosen and a clip's label names
        neither people nor a face (the server would refuse the job)."""
        if self.localizer != "classic":
            return
        bad = list(dict.fromkeys(self.label_for(n) for n in clip_names if not names_people_or_face(self.label_for(n))))
        if not bad:
            return
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        what = (f"FOLEYSPACE_RESOLVE_LABEL {self.label!r}" if self.label is not None else
                "the label (each clip's name by default) " + ", ".join(repr(b) for b in bad[:3]) + more)
        raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but {what} names "
                          "neither; set FOLEYSPACE_RESOLVE_LABEL=person|face")

    def job_options(self, clip_name: str) -> Dict[str, Any]:
        """The job ``options`` for a clip: ``options``, the label and the model settings not at
        the server's default (the vocabulary only when no label is sent: a label names the object)."""
        label = self.label_for(clip_name)
        models: Dict[str, Any] = {k: v for k, v in (("localizer", self.localizer), ("depth", self.depth))
                                  if v != "auto"}
        if self.vocab and not label:
            models["vocab"] = self.vocab if self.vocab in VOCABULARIES else os.path.abspath(
                os.path.expanduser(self.vocab))
        if self.detect_every is not None:
            models["detect_every"] = self.detect_every
        if self.depth_model:
            models["depth_model"] = self.depth_model if self.depth_model in DEPTH_MODELS else os.path.abspath(
                os.path.expanduser(self.depth_model))
        return {**self.options, **({"label": label} if label else {}), **models, **self.render_options(),
                **({"preview": True} if self.preview else {})}


def is_hrtf_name(text: str) -> bool:
    """Whether an HRTF setting names a fetched set (``hutubs:96``) rather than a file, as the
    core's ``foleyspace.hrtf.catalog.is_name`` reads it."""
    head, sep, tail = text.partition(":")
    return bool(sep) and head.lower() in HRTF_SETS and "/" not in tail and "\\" not in tail


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _check_file(key: str, path: str, what: str) -> None:
    """ScriptError unless ``path`` is the absolute path of an existing file (``~`` expanded)."""
    if not os.path.isabs(os.path.expanduser(path)):
        raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} must be the absolute path of {what}, not {path!r}")
    if not os.path.isfile(_absolute(path)):
        raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key}: no such file: {_absolute(path)}")


def names_people_or_face(label: str) -> bool:
    """Whether a label (synonyms separated by commas) names people or a face, as the core's
    ``foleyspace.localize.classic.detector_for`` reads it."""
    return any(w.strip().lower() in PEOPLE_WORDS | FACE_WORDS for w in label.split(","))


def _flag(key: str, text: str) -> bool:
    """An on/off environment setting; ScriptError if it is neither."""
    value = text.strip().lower()
    if value in ("1", "yes", "on", "true"):
        return True
    if value in ("0", "no", "off", "false"):
        return False
    raise ScriptError(f"FoleySpace: {key} must be 1 or 0, not {text!r}")


def _env_whole_number(env: Dict[str, str], key: str, allowed: str) -> Optional[int]:
    """``FOLEYSPACE_RESOLVE_<key>`` as a whole number, None when unset; ScriptError naming the
    variable and ``allowed`` (its unit and range, checked by the caller) if it is not one."""
    text = env.get(f"FOLEYSPACE_RESOLVE_{key}", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_{key} must be a whole number {allowed}, not {text!r}")
    return int(text)


# ---------------------------------------------------------------- records
@dataclass
class Clip:
    """One timeline item to spatialize: its source range and where it sits on the timeline.

    ``start_s``/``end_s`` are the source range the picture shows; ``speed`` how the timeline
    plays it (1 normal, 2 twice as fast, -1 backwards, 0 a freeze frame of ``hold_s`` seconds at
    ``start_s``, with ``end_s`` None). ``audio``/``audio_start_s``: another recording to use as
    the sound (a linked audio item), read from ``audio_start_s`` in timeline time.
    """

    name: str
    video: str
    start_s: float
    end_s: Optional[float]
    record_frame: int  # absolute timeline frame of the item's first frame
    frames: int        # item length in timeline frames
    speed: float = 1.0
    hold_s: Optional[float] = None
    audio: Optional[str] = None
    audio_start_s: Optional[float] = None
    notes: List[str] = field(default_factory=list)

    @property
    def timeline_s(self) -> float:
        """How long the clip lasts on the timeline, seconds."""
        if self.hold_s is not None:
            return self.hold_s
        return ((self.end_s or self.start_s) - self.start_s) / (abs(self.speed) or 1.0)

    def spec(self, out_dir: Path, name: str, options: Dict[str, Any]) -> Dict[str, Any]:
        """The job spec for this clip (see docs/protocol.md); ``options`` from
        :meth:`Settings.job_options` (the label included)."""
        spec: Dict[str, Any] = {"video": self.video, "output_dir": str(out_dir), "name": name,
                                "start_s": self.start_s, "options": dict(options)}
        if self.hold_s is not None:
            spec.update(speed=0.0, hold_s=self.hold_s)
        else:
            spec["end_s"] = self.end_s
            if self.speed != 1.0:
                spec["speed"] = self.speed
        if self.audio:
            spec.update(audio=self.audio, audio_start_s=self.audio_start_s or 0.0)
        return spec


@dataclass
class Stem:
    """A rendered stem for a clip."""

    clip: Clip
    path: str
    duration_s: float
    preview: Optional[str] = None  # the preview movie the job wrote (option preview)


@dataclass
class Placed:
    """A stem on the timeline: audio track (1-based), first frame (absolute) and length."""

    clip: Clip
    path: str
    track: int
    record_frame: int
    frames: int
    confirmed_by: str  # "returned item" or "track lookup"
    preview: Optional[str] = None  # the stem's preview movie (option preview), not placed


@dataclass
class Report:
    """What a run did. ``ok`` is true when at least one stem was placed."""

    placed: List[Placed] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    tracks: List[int] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.placed) and not self.error


# ---------------------------------------------------------------- small helpers
def _call(obj: Any, method: str, *args: Any) -> Any:
    """``obj.method(*args)``, or None if the object or method is missing or the call fails.

    Resolve's proxies can be stale (the item was deleted) or hollow (every getter returns None).
    """
    fn = getattr(obj, method, None) if obj is not None else None
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a Resolve proxy raising is the same as it returning nothing
        return None


def _int(value: Any) -> Optional[int]:
    """An integral frame number from Resolve (int, float or numeric string), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or abs(number - round(number)) > 1e-6:
        return None
    return int(round(number))


def parse_fps(value: Any) -> Optional[float]:
    """Frames per second from Resolve's text (``"24"``, ``"23.976"``, ``"29.97 DF"``), exact for NTSC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        return None
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text)
    if not match:
        return None
    fps = float(match.group(1))
    if fps <= 0:
        return None
    ntsc = round(fps * 1.001)
    if abs(fps - round(fps)) > 1e-3 and abs(fps - ntsc / 1.001) < 2e-3:
        return ntsc * 1000 / 1001
    return fps


def _safe_name(text: str, fallback: str = "clip") -> str:
    """A plain file-name part: letters, digits, ``._-`` (no leading dot)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return name[:80] or fallback


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def item_name(item: Any) -> str:
    """A timeline item's name for messages (falls back to its record frame)."""
    name = _call(item, "GetName")
    if isinstance(name, str) and name:
        return name
    start = _int(_call(item, "GetStart"))
    return f"item at frame {start}" if start is not None else "unnamed item"


# ---------------------------------------------------------------- reading the timeline
def current_timeline(resolve: Any) -> Tuple[Any, Any]:
    """``(project, timeline)`` open in Resolve; ScriptError if there is none."""
    manager = _call(resolve, "GetProjectManager")
    project = _call(manager, "GetCurrentProject")
    if project is None:
        raise ScriptError("FoleySpace: no project is open in DaVinci Resolve.")
    timeline = _call(project, "GetCurrentTimeline")
    if timeline is None:
        raise ScriptError("FoleySpace: the project has no current timeline; open one on the Edit page.")
    return project, timeline


def timeline_fps(project: Any, timeline: Any) -> float:
    """The timeline frame rate (timeline setting, else project setting)."""
    settings = _call(timeline, "GetSettings")  # 21.1+: the form Resolve prefers (a number)
    fps = parse_fps(settings.get("timelineFrameRate")) if isinstance(settings, dict) else None
    fps = fps or parse_fps(_call(timeline, "GetSetting", "timelineFrameRate"))
    fps = fps or parse_fps(_call(project, "GetSetting", "timelineFrameRate"))
    if not fps:
        raise ScriptError("FoleySpace: cannot read the timeline frame rate (timelineFrameRate).")
    return fps


def items_to_process(timeline: Any, track: Optional[int]) -> List[Any]:
    """The current video item, or every item on video track ``track`` (1-based)."""
    if track is None:
        item = _call(timeline, "GetCurrentVideoItem")
        if item is None:
            raise ScriptError("FoleySpace: no video clip under the playhead; move it over a clip "
                              "or set FOLEYSPACE_RESOLVE_TRACK to a video track number.")
        return [item]
    count = _int(_call(timeline, "GetTrackCount", "video")) or 0
    if not 1 <= track <= count:
        raise ScriptError(f"FoleySpace: video track {track} does not exist (the timeline has {count}).")
    items = _call(timeline, "GetItemListInTrack", "video", track)
    if not items:
        raise ScriptError(f"FoleySpace: video track {track} has no clips.")
    return list(items)


def clip_properties(media: Any) -> Dict[str, Any]:
    """All clip properties of a media pool item (``GetClipProperty()`` with no key, the form
    Resolve 21.1 prefers), or {} when Resolve answers otherwise."""
    props = _call(media, "GetClipProperty")
    return props if isinstance(props, dict) else {}


def clip_property(media: Any, props: Dict[str, Any], key: str) -> Any:
    """One clip property: from ``props`` when there, else asked for by key (older Resolve)."""
    value = props.get(key)
    return value if value not in (None, "") else _call(media, "GetClipProperty", key)


def _media_file(media: Any, props: Dict[str, Any]) -> str:
    """The media's absolute file path; Skip when it has none."""
    path = clip_property(media, props, "File Path")
    if not isinstance(path, str) or not path.strip():
        raise Skip("clip has no file path")
    if not os.path.isabs(path):
        raise Skip(f"clip file path is not absolute: {path!r}")
    return path


def _position(item: Any) -> Tuple[int, int]:
    """``(absolute record frame, length in timeline frames)`` of an item; Skip if unreadable."""
    start = _int(_call(item, "GetStart"))
    end = _int(_call(item, "GetEnd"))
    frames = end - start if start is not None and end is not None else _int(_call(item, "GetDuration"))
    if start is None or frames is None:
        raise Skip("Resolve returned no position for this item")
    if frames <= 0:
        raise Skip(f"item has no length ({frames} frames)")
    return start, frames


def _reported_percentage(item: Any) -> Optional[float]:
    """The item's speed in percent from ``GetSpeed()`` (Resolve 21.1+), or None."""
    options = _call(item, "GetSpeed")
    value = options.get("Percentage") if isinstance(options, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _source_frames(item: Any) -> Optional[Tuple[int, int]]:
    """``(GetSourceStartFrame, GetSourceEndFrame)`` (Resolve 19.0.2+), or None when unknown (0/0)."""
    first = _int(_call(item, "GetSourceStartFrame"))
    end = _int(_call(item, "GetSourceEndFrame"))
    if first is None or end is None or (first == 0 and end == 0):
        return None
    return first, end


def item_speed(item: Any, frames: int, fps: float, clip_fps: float, settings: Settings) -> float:
    """The item's constant speed (1 normal, 2 twice as fast, -1 backwards, 0 a freeze frame).

    ``GetSpeed()`` gives the percentage (21.1+); the source span (``GetSourceStartFrame`` to
    ``GetSourceEndFrame``) against the item's length confirms it and gives the direction. Skip
    when they disagree (a speed ramp) or when the speed cannot be confirmed.
    """
    expected = frames * clip_fps / fps  # source frames the item covers at 100 %
    mixed = abs(clip_fps - fps) > 1e-6
    tolerance = (SPAN_TOLERANCE_MIXED_RATES if mixed else SPAN_TOLERANCE_FRAMES) / expected
    span = _source_frames(item)
    measured = None if span is None else (span[1] - span[0]) / expected
    reported = _reported_percentage(item)
    if reported is None:
        if measured is None:
            if settings.assume_normal_speed:
                return 1.0
            raise Skip("cannot verify the clip's speed: Resolve returns no source frames for it "
                       "(GetSourceStartFrame/GetSourceEndFrame need Resolve 19.0.2 or later); set "
                       "FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED=1 if it plays at 100 %")
        if abs(measured - 1.0) <= tolerance:
            return 1.0
        raise Skip(f"the clip is retimed (it plays about {measured * 100:.0f} % of its source) and this "
                   "Resolve version cannot say whether the speed is constant; retimed clips need Resolve "
                   "21.1 or later (TimelineItem.GetSpeed)")
    magnitude = abs(reported) / 100.0
    if measured is None:
        if magnitude == 1.0 and reported > 0:
            return 1.0
        raise Skip(f"Resolve reports {reported:g} % speed but no source frames to confirm it; "
                   "render this clip from an exported timeline (foleyspace render-otio) instead")
    if abs(abs(measured) - magnitude) > tolerance:
        raise Skip(f"variable speed (a speed ramp?): Resolve reports {reported:g} % but the clip covers "
                   f"{span[1] - span[0]} source frames in {frames} timeline frames "  # type: ignore[index]
                   f"(about {measured * 100:.0f} %); only constant speeds can be rendered")
    if magnitude == 0.0:
        return 0.0
    if reported < 0 and measured > 0:
        raise Skip(f"Resolve reports {reported:g} % speed but the clip plays its source forwards")
    return -magnitude if measured < 0 else magnitude


def _source_range(item: Any, first: int, frames: int, fps: float, clip_fps: float,
                  speed: float) -> Tuple[float, Optional[float], Optional[float]]:
    """``(start_s, end_s, hold_s)`` of the source range the picture shows.

    ``first`` is the first source frame shown at 100 % (subclip start + left offset). A retimed
    item's left offset is in the warped domain, so its first frame is ``GetSourceStartFrame``.
    """
    timeline_s = frames / fps
    if speed == 1.0:
        start_s = first / clip_fps
        return start_s, start_s + timeline_s, None
    span = _source_frames(item)
    if span is None:
        raise Skip("Resolve returns no source frames for this retimed clip")
    shown = span[0]
    if speed == 0.0:
        return shown / clip_fps, None, timeline_s
    if speed > 0:
        start_s = shown / clip_fps
        return start_s, start_s + speed * timeline_s, None
    end_s = (shown + 1) / clip_fps  # backwards: the first frame shown is the range's last
    start_s = end_s - abs(speed) * timeline_s
    if start_s < -0.5 / clip_fps:
        raise Skip("the reversed clip's source range starts before its media")
    return max(0.0, start_s), end_s, None


def _track_kind(item: Any) -> Optional[str]:
    """"audio"/"video" for a timeline item (``GetTrackTypeAndIndex``, else ``GetType``)."""
    where = _call(item, "GetTrackTypeAndIndex")
    if isinstance(where, (list, tuple)) and where and isinstance(where[0], str):
        return where[0]
    kind = _call(item, "GetType")
    return kind if isinstance(kind, str) else None


def _linked_audio_item(item: Any, media: Any, video: str) -> Optional[Tuple[Any, Any, Dict[str, Any], str]]:
    """The linked audio item from another recording (lowest audio track), as
    ``(item, media, clip properties, file)``; None if there is none."""
    own_id = _call(media, "GetMediaId")
    found = []
    for other in _call(item, "GetLinkedItems") or []:
        if _track_kind(other) != "audio":
            continue
        other_media = _call(other, "GetMediaPoolItem")
        if other_media is None or (own_id is not None and _call(other_media, "GetMediaId") == own_id):
            continue
        props = clip_properties(other_media)
        path = clip_property(other_media, props, "File Path")
        if not isinstance(path, str) or not os.path.isabs(path) or _norm(path) == _norm(video):
            continue
        where = _call(other, "GetTrackTypeAndIndex")
        track = _int(where[1]) if isinstance(where, (list, tuple)) and len(where) > 1 else None
        found.append((track if track is not None else 1 << 30, len(found), other, other_media, props, path))
    if not found:
        return None
    _, _, other, other_media, props, path = min(found, key=lambda row: row[:2])
    return other, other_media, props, path


def linked_audio(clip: Clip, item: Any, media: Any, fps: float) -> None:
    """Use the sound of a linked audio item from another recording, or of the single audio file
    linked to the media pool item (``GetAudioMapping``), for ``clip``; notes say why not."""
    found = _linked_audio_item(item, media, clip.video)
    if found is None:
        _mapped_audio(clip, media)
        return
    other, other_media, props, path = found
    base = os.path.basename(path)
    percentage = _reported_percentage(other)
    if percentage is not None and percentage != 100.0:
        clip.notes.append(f"the linked audio {base} plays at {percentage:g} %; using the clip's own sound")
        return
    a_start = _int(_call(other, "GetStart"))
    a_left = _int(_call(other, "GetLeftOffset"))  # timeline frames on an audio item (measured)
    if a_start is None or a_left is None:
        clip.notes.append(f"Resolve returned no position for the linked audio {base}; using the clip's own sound")
        return
    a_fps = parse_fps(clip_property(other_media, props, "FPS")) or fps
    sub_start = _int(clip_property(other_media, props, "Start")) or 0
    offset_s = sub_start / a_fps + a_left / fps + (clip.record_frame - a_start) / fps
    if offset_s < 0:
        clip.notes.append(f"the linked audio {base} starts after the picture; using the clip's own sound")
        return
    clip.audio, clip.audio_start_s = path, offset_s
    clip.notes.append(f"sound from the linked audio {base} from {offset_s:.3f} s")


def _mapped_audio(clip: Clip, media: Any) -> None:
    """The audio file linked to the media pool item itself (``GetAudioMapping()["linked_audio"]``)."""
    text = _call(media, "GetAudioMapping")
    try:
        mapping = json.loads(text) if isinstance(text, str) and text.strip() else {}
    except ValueError:
        return
    linked = mapping.get("linked_audio") if isinstance(mapping, dict) else None
    entries = [v for v in linked.values() if isinstance(v, dict)] if isinstance(linked, dict) else []
    if not entries:
        return
    if len(entries) > 1:
        clip.notes.append(f"{len(entries)} audio files are linked to the clip; using the clip's own sound "
                          "(link one on the timeline to choose)")
        return
    path, offset = entries[0].get("path"), entries[0].get("offset")
    if not isinstance(path, str) or not os.path.isabs(path):
        return
    base = os.path.basename(path)
    if offset not in (0, 0.0) or clip.speed != 1.0:
        why = ("is retimed" if clip.speed != 1.0 else
               f"is linked with an offset of {offset} samples at a rate Resolve does not report")
        clip.notes.append(f"the clip {why}; its linked audio {base} is not used, the clip's own sound is")
        return
    clip.audio, clip.audio_start_s = path, clip.start_s
    clip.notes.append(f"sound from the linked audio {base} (audio mapping)")


def clip_from_item(item: Any, fps: float, settings: Optional[Settings] = None) -> Clip:
    """The source file, source range, speed, sound and timeline spot of one item; Skip with the
    reason if it cannot be rendered correctly."""
    settings = settings or Settings()
    name = item_name(item)
    media = _call(item, "GetMediaPoolItem")
    if media is None:
        raise Skip("no media pool item (a generator, title or compound clip?)")
    props = clip_properties(media)
    video = _media_file(media, props)
    start, frames = _position(item)
    left = _int(_call(item, "GetLeftOffset"))
    if left is None or left < 0:
        raise Skip("Resolve returned no source offset (GetLeftOffset) for this item")
    clip_fps = parse_fps(clip_property(media, props, "FPS")) or fps
    sub_start = _int(clip_property(media, props, "Start")) or 0  # a subclip's first frame in its file
    speed = item_speed(item, frames, fps, clip_fps, settings)
    start_s, end_s, hold_s = _source_range(item, sub_start + left, frames, fps, clip_fps, speed)
    clip = Clip(name=name, video=video, start_s=start_s, end_s=end_s, record_frame=start, frames=frames,
                speed=speed, hold_s=hold_s)
    if settings.use_linked_audio:
        linked_audio(clip, item, media, fps)
    if hold_s is not None and not clip.audio:
        raise Skip("a freeze frame plays none of the clip's sound; link a separate recording to it on the "
                   "timeline to spatialize that sound")
    return clip


# ---------------------------------------------------------------- rendering on the server
def _stem_path(out_dir: Path, clip: Clip, taken: set) -> Path:
    base = f"{_safe_name(Path(clip.video).stem)}_{clip.record_frame}_binaural"
    path, k = out_dir / f"{base}.wav", 1
    while path.exists() or str(path) in taken:
        k += 1
        path = out_dir / f"{base}_{k}.wav"
    taken.add(str(path))
    return path


class _Progress:
    """Prints a job's progress events, at most once per stage and quarter."""

    def __init__(self, log: Log, prefix: str) -> None:
        self.log, self.prefix, self.last = log, prefix, ("", -1)

    def __call__(self, event: Dict[str, Any]) -> None:
        if event.get("event") != "progress":
            return
        stage, fraction = str(event.get("stage", "")), event.get("fraction") or 0.0
        step = int(float(fraction) * 4)
        if (stage, step) != self.last:
            self.last = (stage, step)
            self.log(f"{self.prefix} {stage} {float(fraction) * 100:.0f}%")


def render_stems(client: Any, clips: List[Clip], out_dir: Path, settings: Settings,
                 log: Log) -> Tuple[List[Stem], List[Tuple[str, str]]]:
    """Submit every clip, then wait for each in turn (``Client.run_batch``);
    ``(stems, [(clip name, reason)])``.

    A refused or failed job, a timeout or the server going away costs only that clip; when the
    server stays away, the clips not finished yet are reported without further waiting.
    """
    taken: set = set()
    paths = [_stem_path(out_dir, clip, taken) for clip in clips]
    specs = [clip.spec(out_dir, path.name, settings.job_options(clip.name)) for clip, path in zip(clips, paths)]
    prefixes = [f"FoleySpace: [{n}/{len(clips)}] {clip.name}:" for n, clip in enumerate(clips, 1)]
    watchers = [_Progress(log, prefix) for prefix in prefixes]
    stems: List[Stem] = []
    skipped: List[Tuple[str, str]] = []

    def settle(i: int, outcome: Dict[str, Any]) -> None:
        clip, path, prefix = clips[i], paths[i], prefixes[i]
        state, job = outcome.get("state"), outcome.get("job")
        error = outcome.get("error") or {}
        code, message = error.get("code", "error"), error.get("message", "")
        if state == "done":
            result = outcome.get("result") or {}
            stem = str(result.get("stem") or path)
            if not os.path.isfile(stem):
                skipped.append((clip.name, f"the server reported {stem} but it is not there"))
                return
            log(f"{prefix} done -> {stem}")
            preview = result.get("preview")
            preview = preview if isinstance(preview, str) and preview else None
            if preview and os.path.isfile(preview):
                log(f"{prefix} preview -> {preview}")
            elif settings.preview:
                log(f"{prefix} no preview was written" + (f" ({preview} is missing)" if preview else ""))
                preview = None
            stems.append(Stem(clip, stem, float(result.get("duration_s") or clip.timeline_s), preview))
        elif state == "unsent":
            skipped.append((clip.name, f"not sent: {message}"))
        elif state == "refused":
            skipped.append((clip.name, f"the server refused the job ({code}: {message})"))
        elif state == "timeout":
            skipped.append((clip.name, f"no result within {settings.job_timeout_s:g} s (job {job} cancelled)"))
        elif state == "lost" and code == "unavailable":
            skipped.append((clip.name, f"the server went away during the job: {message}"))
        elif state == "lost":
            skipped.append((clip.name, f"server error ({code}: {message})"))
        elif state == "abandoned":
            skipped.append((clip.name, "not finished: the FoleySpace server went away"))
        elif state == "failed":
            skipped.append((clip.name, f"job failed ({code}: {message})"))
        else:
            skipped.append((clip.name, f"job ended as {state}"))

    client.run_batch(specs, timeout=settings.job_timeout_s, on_event=lambda i, event: watchers[i](event),
                     before_wait=lambda i, job: log(f"{prefixes[i]} waiting for job {job}"), on_end=settle)
    return stems, skipped


# ---------------------------------------------------------------- placing on the timeline
def _add_stereo_track(timeline: Any) -> int:
    """Add a stereo audio track and return its 1-based index; ScriptError if Resolve refuses."""
    if not _call(timeline, "AddTrack", "audio", "stereo"):
        raise ScriptError("FoleySpace: Resolve refused to add a stereo audio track.")
    index = _int(_call(timeline, "GetTrackCount", "audio"))
    if not index:
        raise ScriptError("FoleySpace: Resolve added an audio track but reports no audio tracks.")
    _call(timeline, "SetTrackName", "audio", index, TRACK_NAME)
    return index


def _on_track(timeline: Any, track: int, record_frame: int) -> Optional[Any]:
    """The item on audio track ``track`` that starts at ``record_frame``, if any."""
    for item in _call(timeline, "GetItemListInTrack", "audio", track) or []:
        if _int(_call(item, "GetStart")) == record_frame:
            return item
    return None


def end_frame(first: int, frames: int) -> int:
    """The clipInfo ``endFrame`` that places ``frames`` source frames from ``first``
    (see END_FRAME_EXCLUSIVE)."""
    return first + frames if END_FRAME_EXCLUSIVE else first + frames - 1


def _append(media_pool: Any, timeline: Any, media: Any, track: int, record_frame: int,
            frames: int) -> Tuple[Optional[str], str]:
    """Append one stem; ``(how it was confirmed, "")`` or ``(None, why it failed)``."""
    info = {"mediaPoolItem": media, "startFrame": 0, "endFrame": end_frame(0, frames), "mediaType": 2,
            "trackIndex": track, "recordFrame": record_frame}
    result = _call(media_pool, "AppendToTimeline", [info])
    if not result:
        return None, f"Resolve refused to place it on audio track {track} at frame {record_frame}"
    item = result[0] if isinstance(result, (list, tuple)) else None
    start = _int(_call(item, "GetStart"))
    if start is not None:
        if start != record_frame:
            return None, f"Resolve placed it at frame {start} instead of {record_frame}"
        return "returned item", ""
    # a hollow item (every getter None): look for the real one on the track
    found = _on_track(timeline, track, record_frame)
    if found is None:
        return None, f"Resolve returned an empty item and nothing starts at frame {record_frame} on audio track {track}"
    return "track lookup", ""


def _current_is(project: Any, timeline: Any) -> bool:
    """Make ``timeline`` the current one again if the user switched meanwhile (AppendToTimeline uses it)."""
    want = _call(timeline, "GetUniqueId")
    now = _call(_call(project, "GetCurrentTimeline"), "GetUniqueId")
    if want is None or want == now:
        return True
    return bool(_call(project, "SetCurrentTimeline", timeline))


def place_stems(project: Any, timeline: Any, stems: List[Stem], log: Log) -> Report:
    """Import the stems and put each on a new stereo audio track at its clip's record frame.

    An append that fails (an occupied spot, or an empty item that is not on the track) is
    retried once on another new stereo track.
    """
    report = Report()
    if not stems:
        return report
    media_pool = _call(project, "GetMediaPool")
    if media_pool is None:
        raise ScriptError("FoleySpace: cannot reach the media pool.")
    if not _current_is(project, timeline):
        raise ScriptError("FoleySpace: the timeline changed while the stems were rendered and cannot be "
                          "made current again; the stems are in " + os.path.dirname(stems[0].path))
    # clipInfo dicts: the form Resolve 21.1 prefers; plain paths for versions that lack it
    imported = _call(media_pool, "ImportMedia", [{"FilePath": s.path} for s in stems])
    if not isinstance(imported, (list, tuple)) or not imported:
        imported = _call(media_pool, "ImportMedia", [s.path for s in stems])
    if not isinstance(imported, (list, tuple)) or not imported:
        report.skipped = [(s.clip.name, f"Resolve did not import {s.path}") for s in stems]
        return report
    by_path = {}
    for media in imported:
        path = clip_property(media, clip_properties(media), "File Path")
        if isinstance(path, str) and path:
            by_path[_norm(path)] = media
    if not by_path and len(imported) == len(stems):  # hollow media items: trust the order
        by_path = {_norm(s.path): m for s, m in zip(stems, imported)}
    fps = timeline_fps(project, timeline)
    track = _add_stereo_track(timeline)
    report.tracks.append(track)
    for stem in stems:
        clip = stem.clip
        media = by_path.get(_norm(stem.path))
        if media is None:
            report.skipped.append((clip.name, f"Resolve did not import {stem.path}"))
            continue
        frames = min(clip.frames, max(1, int(round(stem.duration_s * fps))))
        available = _int(clip_property(media, clip_properties(media), "Frames"))
        if available:
            frames = min(frames, available)
        how, why = _append(media_pool, timeline, media, track, clip.record_frame, frames)
        used = track
        if how is None:
            try:
                used = _add_stereo_track(timeline)
            except ScriptError as exc:
                report.skipped.append((clip.name, f"{why}; {exc}"))
                continue
            report.tracks.append(used)
            log(f"FoleySpace: {clip.name}: {why}; retrying on new audio track {used}")
            how, why = _append(media_pool, timeline, media, used, clip.record_frame, frames)
        if how is None:
            report.skipped.append((clip.name, why))
            continue
        log(f"FoleySpace: placed {os.path.basename(stem.path)} on audio track {used} "
            f"at frame {clip.record_frame} ({frames} frames)")
        report.placed.append(Placed(clip, stem.path, used, clip.record_frame, frames, how, stem.preview))
    return report


# ---------------------------------------------------------------- the whole run
def default_output_dir(project: Any) -> Path:
    """``OUTPUT_ROOT/<project name>``."""
    name = _call(project, "GetName")
    return Path(OUTPUT_ROOT).expanduser() / _safe_name(name if isinstance(name, str) else "", "Untitled Project")


def spatialize_timeline(resolve: Any, client: Any, settings: Settings, log: Log = print) -> Report:
    """Spatialize the current item or a track's clips and place the stems; prints a summary.

    Nothing is added to the timeline when no server answers or no job succeeds.
    """
    report = Report()
    try:
        settings.check_models()
        project, timeline = current_timeline(resolve)
        fps = timeline_fps(project, timeline)
        clips: List[Clip] = []
        for item in items_to_process(timeline, settings.track):
            try:
                clip = clip_from_item(item, fps, settings)
                for note in clip.notes:
                    log(f"FoleySpace: {clip.name}: {note}")
                clips.append(clip)
            except Skip as why:
                report.skipped.append((item_name(item), str(why)))
        if not clips:
            raise ScriptError("FoleySpace: no clip to spatialize.")
        settings.check_labels([c.name for c in clips])  # classic: a label naming people or a face
        try:
            client.request("ping")
        except ServerUnavailable as exc:
            raise ScriptError(f"FoleySpace: {exc}") from None
        except ClientError as exc:  # e.g. a token from another FOLEYSPACE_HOME
            raise ScriptError(f"FoleySpace: the server refused the connection ({exc.code}: {exc}); "
                              "is FOLEYSPACE_HOME the one the server uses?") from None
        check_backends(client, settings, log)
        out_dir = settings.output_dir or default_output_dir(project)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScriptError(f"FoleySpace: cannot create the stem folder {out_dir}: {exc.strerror}") from None
        log(f"FoleySpace: {len(clips)} clip(s) -> {out_dir}")
        stems, failed = render_stems(client, clips, out_dir, settings, log)
        report.skipped.extend(failed)
        placed = place_stems(project, timeline, stems, log)
        report.placed, report.tracks = placed.placed, placed.tracks
        report.skipped.extend(placed.skipped)
    except ScriptError as exc:
        report.error = str(exc)
        log(report.error)
    _summarize(report, log)
    return report


def check_backends(client: Any, settings: Settings, log: Log) -> None:
    """Before anything renders: a model backend the settings name that this server lacks is a
    ScriptError with the server's word on how to get it. A server whose ``hello`` lists no
    backends is left to answer each job itself."""
    if settings.label is None and settings.vocab:
        log("FoleySpace: FOLEYSPACE_RESOLVE_VOCAB is not used: each clip's name is sent as its label; "
            "set FOLEYSPACE_RESOLVE_LABEL to - to let YOLO-World choose from the vocabulary")
    named = [(kind, name) for kind, name in (("localizer", settings.localizer), ("depth", settings.depth),
                                             ("renderer", settings.renderer)) if name != "auto"]
    if not named:
        return
    try:
        hello = client.request("hello")
    except ClientError as exc:
        raise ScriptError(f"FoleySpace: the server did not say which models it has ({exc.code}: {exc})") from None
    listed = (hello.get("capabilities") or {}).get("backends") if isinstance(hello, dict) else None
    if not isinstance(listed, dict):
        return
    for kind, name in named:
        rows = {r.get("name"): r for r in listed.get(kind) or () if isinstance(r, dict)}
        row = rows.get(name)
        key = f"FOLEYSPACE_RESOLVE_{kind.upper()}"
        if row is None:
            raise ScriptError(f"FoleySpace: {key}={name}: the FoleySpace server has no such {kind} "
                              f"(it has {', '.join(str(n) for n in rows) or 'none'}); update the server")
        if not row.get("available", True):
            why = " ".join(str(row.get("missing") or "it is not installed there").split())
            raise ScriptError(f"FoleySpace: {key}={name} is not available on the FoleySpace server: {why}; "
                              f"or set {key} to auto")


def _summarize(report: Report, log: Log) -> None:
    tracks = ", ".join(f"A{t}" for t in report.tracks)
    if report.placed:
        log(f"FoleySpace: placed {len(report.placed)} stem(s) on audio track(s) {tracks}.")
        for placed in report.placed:
            if placed.preview:
                log(f"FoleySpace: {placed.clip.name}: Preview: {placed.preview}")
    else:
        log("FoleySpace: nothing was placed on the timeline.")
    if report.skipped:
        log(f"FoleySpace: skipped {len(report.skipped)}:")
        for name, reason in report.skipped:
            log(f"  - {name}: {reason}")


def _resolve_module_dirs() -> List[str]:
    """Where Resolve keeps ``DaVinciResolveScript.py`` on each OS."""
    dirs = []
    if os.environ.get("RESOLVE_SCRIPT_API"):
        dirs.append(os.path.join(os.environ["RESOLVE_SCRIPT_API"], "Modules"))
    if sys.platform == "darwin":
        dirs.append("/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting/Modules")
    elif sys.platform.startswith("win"):
        dirs.append(os.path.join(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "Blackmagic Design",
                                 "DaVinci Resolve", "Support", "Developer", "Scripting", "Modules"))
    else:
        dirs.append("/opt/resolve/Developer/Scripting/Modules")
    return dirs


def find_resolve(namespace: Dict[str, Any]) -> Any:
    """Resolve's scripting object: the ``resolve`` global Resolve provides, else
    ``bmd``/``DaVinciResolveScript.scriptapp("Resolve")``; None if nothing answers."""
    if namespace.get("resolve") is not None:
        return namespace["resolve"]
    bmd = namespace.get("bmd")
    if bmd is not None and _call(bmd, "scriptapp", "Resolve") is not None:
        return _call(bmd, "scriptapp", "Resolve")
    try:
        import DaVinciResolveScript as dvr  # type: ignore[import-not-found]
    except ImportError:
        for path in _resolve_module_dirs():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)
        try:
            import DaVinciResolveScript as dvr  # type: ignore[import-not-found]
        except ImportError:
            return None
    return _call(dvr, "scriptapp", "Resolve")


def main(namespace: Optional[Dict[str, Any]] = None, log: Log = print) -> bool:
    """Entry point when Resolve runs the script; True when at least one stem was placed."""
    namespace = globals() if namespace is None else namespace
    if Client is None:
        log(IMPORT_ERROR)
        return False
    resolve = find_resolve(namespace)
    if resolve is None:
        log("FoleySpace: DaVinci Resolve is not reachable: run this from Workspace > Scripts inside Resolve "
            "(Python scripting needs Resolve Studio from 21.1), or enable external scripting.")
        return False
    try:
        settings = Settings.from_env()
    except ScriptError as exc:
        log(str(exc))
        return False
    try:
        client = Client(timeout=settings.request_timeout_s, retries=settings.request_retries)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed FOLEYSPACE_SERVER address
        log(f"FoleySpace: cannot set up the server connection: {exc}")
        return False
    try:
        return spatialize_timeline(resolve, client, settings, log).ok
    except Exception as exc:  # noqa: BLE001 - a bug: one line, then the traceback for the report
        log(f"FoleySpace: unexpected error: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return False
    finally:
        client.close()


if __name__ == "__main__":
    _ok = main()
    if not any(name in globals() for name in ("resolve", "bmd", "fusion", "fu", "app")):
        sys.exit(0 if _ok else 1)  # run from a shell: report through the exit status
