"""The backend registry, and the per-process cache that builds each backend once.

Every swappable stage is a *kind* — ``localizer``, ``depth``, ``mono``, ``renderer``, ``hrir`` —
with backends behind it, registered here by name with a lazily imported factory
(``"module:callable"``). Nothing heavy is imported to list, validate or describe backends: the
server's ``hello`` and job-spec validation read the registry without loading a model.

Adding a backend is one module plus one :class:`Backend` entry: in :data:`BUILTIN` for this
package, or from another package through the ``foleyspace.backends`` entry-point group, whose
entries are callables ``register(registry)``.

:class:`Backends` owns model and device lifetime: one per process (a server worker, a CLI run,
an in-process OTIO batch). It builds a backend the first time a job needs it and hands the same
object to every later job with the same backend, settings and device.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from importlib.util import find_spec
from typing import Any

from foleyspace.config import AUTO
from foleyspace.device import check_device_name, resolve_device
from foleyspace.errors import FoleySpaceError
from foleyspace.job import Job

log = logging.getLogger(__name__)

KINDS = ("localizer", "depth", "mono", "renderer", "hrir")
#: The kinds a job chooses by name (the others follow from the job's inputs).
CHOSEN_KINDS = ("localizer", "depth", "renderer")
ENTRY_POINT_GROUP = "foleyspace.backends"
#: Entry points of mono generators: each ``name = "module:factory"``, the factory taking ``job``
#: (and any of the keywords :class:`Backend` lists) and returning a :class:`~foleyspace.mono.MonoSource`.
MONO_GENERATOR_GROUP = "foleyspace.mono_sources"


class BackendError(FoleySpaceError):
    """An unknown, unavailable or unusable backend choice."""

    code = "bad_backend"


#: Conditions on a job that a backend can require (``Backend.when``): test, and what it asks of the user.
CONDITIONS: dict[str, tuple[Callable[[Job], bool], str]] = {
    "seed_box": (lambda job: job.seed_box is not None, "a box around the object (--box X,Y,W,H[@TIME])"),
    "audio": (lambda job: job.audio is not None, "a sound file (--audio FILE)"),
    "clip_audio": (lambda job: job.audio is None and not job.generate_audio, "the clip's own sound (no --audio)"),
    "generate": (lambda job: job.generate_audio, "a generated sound (--audio generate)"),
    "people_or_face_label": (lambda job: _classic_label(job.label),
                             "a label naming people or a face (--label person, --label face)"),
    "hrtf": (lambda job: job.hrtf is not None, "a SOFA file (--hrtf FILE)"),
    "no_hrtf": (lambda job: job.hrtf is None, "no SOFA file"),
    "checkpoint": (lambda job: _checkpoint_given(job), "a trained checkpoint (--checkpoint CKPT)"),
}


def _checkpoint_given(job: Job) -> bool:
    from foleyspace.diffusion.config import checkpoint_given  # standard library only

    return checkpoint_given(job.config.settings_for("renderer", "diffusion"))


def _classic_label(label: str | None) -> bool:
    from foleyspace.localize.classic import detector_for  # light: OpenCV loads when the backend is built

    return detector_for(label) is not None


@dataclass(frozen=True)
class Backend:
    """A registry entry.

    Attributes:
        kind: one of :data:`KINDS`.
        name: what users type (``--localizer NAME``, ``"localizer": NAME``).
        factory: ``"module:callable"`` that builds it. It is called with those of these keywords
            its signature names: ``config`` (the job's settings for this backend, when given:
            ``SpatializeConfig.settings["kind:name"]``),
            ``device`` (a resolved torch device string), ``sample_rate`` (output rate, Hz), ``path``
            (``hrir``: the SOFA file), ``hrir_set`` (``renderer``), ``job`` (``mono``), ``models``
            (the process's :class:`ModelCache`, where heavy weights are loaded once).
        summary: one line for ``hello`` and ``--help``.
        requires: modules that must be importable (an optional extra), checked without importing.
        extra: the pip extra that provides them, for the error message.
        when: a :data:`CONDITIONS` key the job must satisfy (``auto`` skips the backend otherwise).
        priority: ``auto`` picks the usable backend with the highest priority.
        ready: ``"module:callable"`` (a light module) called with the backend's settings (or
            ``None``) that returns why it cannot run here — its model files are missing — or
            ``None``. ``auto`` then warns once and takes the next backend; naming it is an error.

    A backend whose factory takes ``job`` is built per job (it holds that job's inputs); all
    others are built once per process and shared by every job with the same settings.
    """

    kind: str
    name: str
    factory: str
    summary: str
    requires: tuple[str, ...] = ()
    extra: str | None = None
    when: str | None = None
    priority: int = 0
    ready: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"backend kind must be one of {KINDS}, not {self.kind!r}")
        if self.when is not None and self.when not in CONDITIONS:
            raise ValueError(f"backend condition must be one of {sorted(CONDITIONS)}, not {self.when!r}")
        if ":" not in self.factory:
            raise ValueError("factory must be 'module:callable'")

    def missing(self) -> str | None:
        """Why this backend cannot run here (a module is not installed), or ``None``."""
        absent = [m for m in self.requires if find_spec(m.split(".")[0]) is None]
        if not absent:
            return None
        hint = f" (pip install 'foleyspace[{self.extra}]')" if self.extra else ""
        return f"needs {', '.join(absent)}{hint}"

    def unready(self, config: Any = None) -> str | None:
        """Why this backend's model files are missing here (see ``ready``), or ``None``."""
        if self.ready is None:
            return None
        return _resolve(self.ready, self)(config)

    def load(self) -> Callable[..., Any]:
        """Import and return the factory; :class:`BackendError` if it cannot be imported."""
        return _resolve(self.factory, self)


def _resolve(target: str, backend: Backend) -> Callable[..., Any]:
    """Import ``"module:callable"``; :class:`BackendError` naming ``backend`` if it cannot be."""
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"{backend.kind} {backend.name!r} cannot be loaded from {target} "
                           f"({exc.__class__.__name__}: {exc})") from exc
    return obj


BUILTIN: tuple[Backend, ...] = (
    Backend("localizer", "seeded", "foleyspace.localize.tracker:SeededTracker",
            "follows a user-drawn box forward and backward (template matching)", when="seed_box", priority=100),
    Backend("localizer", "yolo-world", "foleyspace.localize.yolo_world:YoloWorldLocalizer",
            "YOLO-World open-vocabulary detector: the named object (--label), or the best label of a vocabulary",
            requires=("torch", "ultralytics"), extra="models", priority=50, ready="foleyspace.models:yolo_world_ready"),
    Backend("localizer", "classic", "foleyspace.localize.classic:ClassicLocalizer",
            "OpenCV's bundled HOG people detector or Haar face cascades, for --label person / face (no download)",
            when="people_or_face_label", priority=20),
    Backend("localizer", "motion", "foleyspace.localize.motion:MotionLocalizer",
            "the main moving object, with camera-motion compensation"),
    Backend("depth", "depth-anything", "foleyspace.depth_anything:DepthAnythingEstimator",
            "Depth Anything V2 monocular depth (relative, or metres with a metric model)",
            requires=("torch", "transformers"), extra="models", priority=50,
            ready="foleyspace.models:depth_anything_ready"),
    Backend("depth", "box-scale", "foleyspace.depth:BoxScaleDepth", "relative depth from the box size"),
    Backend("mono", "file", "foleyspace.mono:file_audio", "a sound file", when="audio"),
    Backend("mono", "mmaudio", "foleyspace.mono_mmaudio:MMAudioMono",
            "MMAudio: the sound generated from the picture and the label (--audio generate)",
            requires=("mmaudio", "torch"), when="generate", priority=50),
    Backend("mono", "clip", "foleyspace.mono:clip_audio", "the clip's own audio", when="clip_audio"),
    Backend("hrir", "sofa", "foleyspace.hrtf.sofa:SofaHrirSet", "measured HRIRs from a SOFA file",
            requires=("sofar",), when="hrtf"),
    Backend("hrir", "spherical-head", "foleyspace.hrtf.spherical_head:SphericalHeadHrirSet",
            "analytic spherical head (Brown–Duda)", when="no_hrtf"),
    Backend("renderer", "dsp", "foleyspace.render:DspRenderer",
            "HRTF convolution, segments cross-faded along the path (eq. 8)"),
    Backend("renderer", "diffusion", "foleyspace.diffusion.renderer:DiffusionRenderer",
            "the trained binaural DiffWave (paper §III-D), with a checkpoint (--checkpoint CKPT)",
            requires=("torch", "scipy"), extra="models", when="checkpoint", priority=10),
)


class Registry:
    """Backends by kind and name."""

    def __init__(self, backends: Iterable[Backend] = ()) -> None:
        self._backends: dict[tuple[str, str], Backend] = {}
        self._warned: set[str] = set()
        for backend in backends:
            self.add(backend)

    def add(self, backend: Backend) -> None:
        """Register ``backend``; a name already taken in its kind is an error."""
        key = (backend.kind, backend.name)
        if backend.name == AUTO or key in self._backends:
            raise ValueError(f"{backend.kind} backend name {backend.name!r} is taken")
        self._backends[key] = backend

    def names(self, kind: str) -> list[str]:
        """Names of ``kind``, highest ``auto`` priority first."""
        found = [b for (k, _), b in self._backends.items() if k == kind]
        return [b.name for b in sorted(found, key=lambda b: -b.priority)]

    def get(self, kind: str, name: str) -> Backend:
        try:
            return self._backends[(kind, name)]
        except KeyError:
            raise BackendError(f"{kind} {name!r} is unknown; known: {', '.join([AUTO, *self.names(kind)])}") from None

    def choose(self, kind: str, name: str, job: Job, exclude: Iterable[str] = ()) -> Backend:
        """The backend that runs ``kind`` for ``job``: ``name``, or the best usable one for ``auto``
        (leaving out the backends named in ``exclude``).

        Raises :class:`BackendError` when the named backend is unknown, not installed or its
        condition does not hold, or when a job's box would be ignored.
        """
        if name == AUTO:
            reasons = []
            for candidate in self.names(kind):
                backend = self._backends[(kind, candidate)]
                if candidate in exclude or not self._holds(backend, job):
                    continue
                why = backend.missing()
                if why is None:
                    why = backend.unready(job.config.settings_for(kind, candidate))
                    if why is None:
                        return backend
                    self._warn_once(f"{kind} {candidate} is installed but not used: {why}")
                reasons.append(f"{candidate} {why}")
            raise BackendError(f"no {kind} backend can run this job" + (f": {'; '.join(reasons)}" if reasons else ""))
        backend = self.get(kind, name)
        why = backend.missing()
        if why:
            raise BackendError(f"{kind} {name!r} {why}")
        if not self._holds(backend, job):
            raise BackendError(f"{kind} {name!r} needs {CONDITIONS[backend.when][1]}")  # type: ignore[index]
        why = backend.unready(job.config.settings_for(kind, name))
        if why:
            raise BackendError(f"{kind} {name!r}: {why}")
        if kind == "localizer" and job.seed_box is not None and backend.when != "seed_box":
            raise BackendError(f"localizer {name!r} does not use a box; leave out --box or choose the seeded localizer")
        return backend

    def _warn_once(self, message: str) -> None:
        """Log ``message`` as a warning the first time this registry meets it."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    @staticmethod
    def _holds(backend: Backend, job: Job) -> bool:
        return backend.when is None or CONDITIONS[backend.when][0](job)

    def capabilities(self) -> dict[str, list[dict[str, Any]]]:
        """Every backend by kind: name, summary, whether it can run here (and why not)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind in KINDS:
            rows = []
            for name in self.names(kind):
                backend = self._backends[(kind, name)]
                why = backend.missing() or backend.unready()
                rows.append({"name": name, "summary": backend.summary, "available": why is None,
                             **({"missing": why} if why else {})})
            out[kind] = rows
        return out


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The built-in backends plus those of installed plug-ins (``foleyspace.backends`` entry points).

    A plug-in that fails to register is logged and left out; it never stops the others.
    """
    registry = Registry(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()(registry)
        except Exception as exc:  # a broken plug-in must not take the tool down
            log.warning("backend plug-in %s could not register: %s: %s", ep.name, exc.__class__.__name__, exc)
    for ep in entry_points(group=MONO_GENERATOR_GROUP):
        try:
            registry.add(Backend("mono", ep.name, ep.value, f"mono generator plug-in ({ep.value})", when="generate",
                                 priority=10))
        except ValueError as exc:
            log.warning("mono generator plug-in %s could not register: %s", ep.name, exc)
    return registry


def _key(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _file_key(path: Any) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
        return str(os.path.realpath(path)), st.st_mtime_ns, st.st_size
    except OSError:
        return str(path), 0, 0


class ModelCache:
    """Heavy models of one process, loaded once and shared by every backend object that uses
    them (a localizer rebuilt for other per-job settings keeps the same weights in memory).

    Keys are tuples whose first item names the model for people (``hello``/``status`` list
    them), e.g. ``("yolo-world yolov8s-worldv2.pt", "/path/file.pt", "cpu")``.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        """The model under ``key``, loading it with ``load()`` the first time."""
        if key not in self._items:
            log.info("loading model %s", key[0])
            self._items[key] = load()
        return self._items[key]

    def names(self) -> list[str]:
        """What is loaded, in words."""
        return [str(key[0]) + (f" on {key[-1]}" if len(key) > 1 else "") for key in self._items]


@dataclass
class Stages:
    """The objects that run one job, and what the sidecar says of them."""

    localizer: Any
    depth: Any
    mono: Any
    hrir_set: Any
    renderer: Any
    described: dict[str, dict[str, Any]] = field(default_factory=dict)


def describe(backend: Backend, obj: Any) -> dict[str, Any]:
    """What ran, for the sidecar: name, factory, the object's own ``describe()`` and its settings."""
    info: dict[str, Any] = {"name": backend.name, "factory": backend.factory}
    label = getattr(obj, "name", None)
    if isinstance(label, str) and label != backend.name:
        info["detail"] = label
    if callable(getattr(obj, "describe", None)):
        info.update(obj.describe())
    config = getattr(obj, "config", None)
    if is_dataclass(config) and not isinstance(config, type):
        info["settings"] = asdict(config)
    return info


class Backends:
    """Builds backends once per process and hands them to jobs.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; resolved (and PyTorch
            imported) only when a backend's factory takes a ``device``.
        registry: where backends are looked up (default: :func:`default_registry`).
    """

    def __init__(self, device: str = AUTO, registry: Registry | None = None) -> None:
        self.device_name = check_device_name(device)
        self.registry = registry or default_registry()
        self._device: str | None = None
        self._built: dict[tuple[Any, ...], Any] = {}
        self.models = ModelCache()

    @property
    def device(self) -> str:
        """The resolved device (first use imports PyTorch unless the device is ``cpu``)."""
        if self._device is None:
            self._device = resolve_device(self.device_name)
        return self._device

    def check_device(self) -> None:
        """Resolve the device now, so a missing GPU is reported before any work starts."""
        if self.device_name != AUTO:
            _ = self.device

    def build(self, backend: Backend, key_extra: Any = None, **available: Any) -> Any:
        """The object ``backend``'s factory makes from the keywords it takes; cached by backend,
        settings, device and ``key_extra`` unless the factory takes the ``job`` (per job)."""
        factory = backend.load()
        params = inspect.signature(factory).parameters
        kwargs = {k: v for k, v in available.items() if k in params and v is not None}
        if "models" in params:
            kwargs["models"] = self.models
        if "device" in params:
            kwargs["device"] = self.device
        if "job" in params:
            return factory(**kwargs)
        key = (backend.kind, backend.name, _key(kwargs.get("config")), kwargs.get("device"), key_extra)
        if key not in self._built:
            log.info("loading %s %s", backend.kind, backend.name)
            self._built[key] = factory(**kwargs)
        return self._built[key]

    def choose(self, kind: str, job: Job) -> Backend:
        """The backend of ``kind`` that runs ``job`` (its named choice, or ``auto``)."""
        name = getattr(job.config, kind) if kind in CHOSEN_KINDS else AUTO
        return self.registry.choose(kind, name, job)

    def _hrir(self, job: Job) -> tuple[Backend, Any, Any]:
        backend = self.choose("hrir", job)
        hrtf = str(job.hrtf) if job.hrtf else None
        config = job.config.settings_for("hrir", backend.name)
        # the full build key: a renderer built for this set is keyed by it too
        key = (backend.name, _file_key(hrtf), job.config.output.sample_rate, _key(config))
        return backend, key, self.build(backend, key, config=config, path=hrtf,
                                        sample_rate=job.config.output.sample_rate)

    def hrir_set(self, job: Job) -> Any:
        """The HRIR set ``job`` renders with (a SOFA file's, or the analytic head)."""
        return self._hrir(job)[2]

    def fallback(self, kind: str, job: Job, failed: str) -> tuple[Any, dict[str, Any]] | None:
        """The next backend ``auto`` would pick for ``kind`` after ``failed`` (built, and its
        sidecar description), or ``None`` when there is none."""
        try:
            backend = self.registry.choose(kind, AUTO, job, exclude={failed})
        except BackendError:
            return None
        obj = self.build(backend, config=job.config.settings_for(kind, backend.name))
        return obj, describe(backend, obj)

    def for_job(self, job: Job) -> Stages:
        """The localizer, depth, mono source, HRIR set and renderer that run ``job``."""
        cfg = job.config
        picked = {kind: self.choose(kind, job) for kind in ("localizer", "depth", "mono", "renderer")}
        picked["hrir"], hrir_key, hrir_set = self._hrir(job)
        built = {kind: self.build(picked[kind], config=cfg.settings_for(kind, picked[kind].name))
                 for kind in ("localizer", "depth")}
        built["hrir"] = hrir_set
        built["mono"] = self.build(picked["mono"], job=job)
        renderer = picked["renderer"]
        built["renderer"] = self.build(renderer, hrir_key, config=cfg.settings_for("renderer", renderer.name),
                                       hrir_set=hrir_set, sample_rate=cfg.output.sample_rate)
        return Stages(localizer=built["localizer"], depth=built["depth"], mono=built["mono"],
                      hrir_set=hrir_set, renderer=built["renderer"],
                      described={kind: describe(picked[kind], built[kind]) for kind in KINDS})
