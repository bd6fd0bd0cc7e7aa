"""Model files: where they live, which are present, and how to get them (standard library only).

Weights are never downloaded while a job runs. They are looked up, in order, in

1. the models folder: ``FOLEYSPACE_MODELS`` if set (``--models-dir`` sets it for a run), else
   ``$XDG_DATA_HOME/foleyspace/models`` (``~/.local/share/foleyspace/models``) on Linux,
   ``~/Library/Application Support/FoleySpace/models`` on macOS, ``%LOCALAPPDATA%\\FoleySpace\\models``
   on Windows;
2. the library's own cache: ultralytics' ``weights_dir`` (its ``settings.json``) for YOLO-World
   weights, the Hugging Face hub cache (``HF_HUB_CACHE``/``HF_HOME``) for Depth Anything.

``foleyspace models fetch NAME`` downloads into the models folder when online; offline it fails
with the file to place and where. A missing model is a :class:`ModelError` naming the fix.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from foleyspace.errors import FoleySpaceError

#: The default YOLO-World weights (ultralytics' name).
YOLO_WORLD_WEIGHTS = "yolov8s-worldv2.pt"
#: Where ultralytics publishes its weights, for the offline message.
YOLO_ASSETS_URL = "https://github.com/ultralytics/assets/releases/download/v8.4.0/"
#: Depth Anything V2 on the Hugging Face hub, by short name (relative: inverse depth; metric: metres).
DEPTH_ANYTHING_MODELS = {
    "small": "depth-anything/Depth-Anything-V2-Small-hf",
    "base": "depth-anything/Depth-Anything-V2-Base-hf",
    "large": "depth-anything/Depth-Anything-V2-Large-hf",
    "metric-indoor-small": "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
    "metric-outdoor-small": "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
    "metric-indoor-large": "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf",
    "metric-outdoor-large": "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf",
}
#: Weight files a Hugging Face model folder may hold.
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: The folder of cached CLIP text embeddings, under the models folder.
TEXT_EMBEDDINGS_DIR = "text-embeddings"


class ModelError(FoleySpaceError):
    """A model that is missing, unreadable or cannot be fetched; the message says how to fix it."""

    code = "missing_model"


def user_data_dir() -> Path:
    """FoleySpace's per-user data folder (not created): ``$XDG_DATA_HOME/foleyspace``
    (``~/.local/share/foleyspace``) on Linux, ``~/Library/Application Support/FoleySpace`` on macOS,
    ``%LOCALAPPDATA%\\FoleySpace`` on Windows."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "FoleySpace"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "FoleySpace"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "foleyspace"


def models_dir() -> Path:
    """The models folder (not created)."""
    env = os.environ.get("FOLEYSPACE_MODELS")
    if env:
        return Path(env).expanduser()
    return user_data_dir() / "models"


def depth_anything_repo(name: str) -> str:
    """The hub id of a Depth Anything model given by short name (``small``…) or hub id."""
    return DEPTH_ANYTHING_MODELS.get(name, name)


def _ultralytics_weights_dir() -> Path | None:
    """ultralytics' ``weights_dir`` from its settings file, read without importing it."""
    base = os.environ.get("YOLO_CONFIG_DIR")
    if base:
        candidates = [Path(base) / "settings.json", Path(base) / "Ultralytics" / "settings.json"]
    elif sys.platform == "darwin":
        candidates = [Path.home() / "Library" / "Application Support" / "Ultralytics" / "settings.json"]
    elif os.name == "nt":
        candidates = [Path(os.environ.get("APPDATA", Path.home())) / "Ultralytics" / "settings.json"]
    else:
        candidates = [Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "Ultralytics" / "settings.json"]
    for settings in candidates:
        try:
            folder = json.loads(settings.read_text(encoding="utf-8")).get("weights_dir")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(folder, str) and folder:
            return Path(folder)
    return None


def find_yolo_weights(name: str = YOLO_WORLD_WEIGHTS) -> Path | None:
    """The YOLO-World weights file ``name`` (a file name, or a path), or ``None``."""
    given = Path(name).expanduser()
    if given.is_absolute() or len(given.parts) > 1:
        return given if given.is_file() else None
    for folder in (models_dir(), _ultralytics_weights_dir()):
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None


def _hf_folder_ok(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in HF_WEIGHT_FILES)


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(home) / "hub"


def find_hf_model(repo: str) -> Path | None:
    """The folder holding hub model ``repo`` (``config.json`` and weights), or ``None``: the
    models folder's ``repo`` sub-folder, a local folder given as ``repo``, or a hub-cache snapshot."""
    given = Path(repo).expanduser()
    if given.is_absolute() and _hf_folder_ok(given):
        return given
    local = models_dir() / repo
    if _hf_folder_ok(local):
        return local
    snapshots = _hf_cache_dir() / f"models--{repo.replace('/', '--')}" / "snapshots"
    if snapshots.is_dir():
        for snap in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
            if _hf_folder_ok(snap):
                return snap
    return None


@dataclass(frozen=True)
class ModelRow:
    """One line of ``foleyspace models list``."""

    name: str
    what: str
    path: Path | None
    size_bytes: int

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "what": self.what, "present": self.path is not None,
                "path": str(self.path) if self.path else None, "size_bytes": self.size_bytes}


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_rows() -> list[ModelRow]:
    """Every model FoleySpace can use, with where it was found (or not)."""
    rows = [ModelRow("yolo-world", f"YOLO-World detector ({YOLO_WORLD_WEIGHTS})", find_yolo_weights(), 0)]
    for short, repo in DEPTH_ANYTHING_MODELS.items():
        rows.append(ModelRow(f"depth-anything-{short}", f"Depth Anything V2 ({repo})", find_hf_model(repo), 0))
    embeddings = models_dir() / TEXT_EMBEDDINGS_DIR
    rows.append(ModelRow("text-embeddings", "cached CLIP ViT-B/32 label embeddings",
                         embeddings if embeddings.is_dir() and any(embeddings.iterdir()) else None, 0))
    return [ModelRow(r.name, r.what, r.path, _size(r.path)) for r in rows]


def missing_yolo_message(name: str) -> str:
    """How to get YOLO-World weights ``name``, for errors and warnings."""
    return (f"YOLO-World weights {name} were not found in {models_dir()} (or ultralytics' weights folder); "
            f"get them with `foleyspace models fetch yolo-world` when online, or place the file from "
            f"{YOLO_ASSETS_URL}{Path(name).name} in that folder")


def missing_hf_message(repo: str) -> str:
    """How to get hub model ``repo``, for errors and warnings."""
    return (f"the depth model {repo} was not found in {models_dir() / repo} (or the Hugging Face cache); "
            f"get it with `foleyspace models fetch {_short_name(repo)}` when online, or copy the files of "
            f"https://huggingface.co/{repo} (config.json, model.safetensors) into that folder")


def _short_name(repo: str) -> str:
    for short, known in DEPTH_ANYTHING_MODELS.items():
        if known == repo:
            return f"depth-anything-{short}"
    return repo


def yolo_world_ready(config: object = None) -> str | None:
    """Why YOLO-World cannot run here (its weights file is missing), or ``None``; files only."""
    weights = getattr(config, "weights", YOLO_WORLD_WEIGHTS)
    return None if find_yolo_weights(weights) is not None else missing_yolo_message(weights)


def depth_anything_ready(config: object = None) -> str | None:
    """Why Depth Anything cannot run here (its model folder is missing), or ``None``; files only."""
    repo = depth_anything_repo(getattr(config, "model", "small"))
    return None if find_hf_model(repo) is not None else missing_hf_message(repo)


def fetch(name: str) -> Path:
    """Download model ``name`` (``yolo-world``, ``depth-anything-<variant>``, ``clip``) into the
    models folder; :class:`ModelError` saying what to place where when that fails (offline)."""
    root = models_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the models folder {root} ({exc.strerror})") from None
    if name == "yolo-world":
        target = root / YOLO_WORLD_WEIGHTS
        try:
            from ultralytics.utils.downloads import attempt_download_asset

            got = Path(attempt_download_asset(str(target)))
        except Exception as exc:  # network errors come in many types
            raise ModelError(f"cannot download {YOLO_WORLD_WEIGHTS} ({exc.__class__.__name__}); "
                             + missing_yolo_message(YOLO_WORLD_WEIGHTS)) from None
        if not got.is_file():
            raise ModelError(missing_yolo_message(YOLO_WORLD_WEIGHTS))
        return got
    if name.startswith("depth-anything-") and name[len("depth-anything-"):] in DEPTH_ANYTHING_MODELS:
        repo = DEPTH_ANYTHING_MODELS[name[len("depth-anything-"):]]
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo, local_dir=str(root / repo),
                                          allow_patterns=["config.json", "*.safetensors", "preprocessor_config.json"]))
        except Exception as exc:
            raise ModelError(f"cannot download {repo} ({exc.__class__.__name__}); " + missing_hf_message(repo)) from None
    if name == "clip":
        from foleyspace.localize.text_embeddings import precompute_vocabularies

        return precompute_vocabularies()
    known = ["yolo-world", "clip", *(f"depth-anything-{s}" for s in DEPTH_ANYTHING_MODELS)]
    raise ModelError(f"unknown model {name!r}; known: {', '.join(known)}, all")
