"""CLIP text embeddings of detector labels, cached so a known label needs no CLIP at run time.

YOLO-World detects the classes whose CLIP ViT-B/32 text embeddings it is given. Computing one
needs CLIP (the ``clip`` package and its weights, downloaded once); so every embedding computed
is stored in ``<models>/text-embeddings/clip-ViT-B-32.npz`` (labels and unit vectors, float32,
512-d) and read from there afterwards. ``foleyspace models fetch clip`` fills it for every label of
the shipped vocabularies, after which offline-vocabulary runs need no network and no CLIP.
"""

from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from foleyspace.atomic_file import atomic_path
from foleyspace.localize.vocabulary import VOCABULARIES, load_vocabulary
from foleyspace.models import TEXT_EMBEDDINGS_DIR, ModelError, models_dir

log = logging.getLogger(__name__)

CLIP_VARIANT = "clip:ViT-B/32"
STORE_NAME = "clip-ViT-B-32.npz"
DIMENSION = 512


def normalized_label(label: str) -> str:
    """The key a label is cached under: trimmed, inner whitespace collapsed, lower case."""
    return " ".join(label.split()).lower()


class TextEmbeddings:
    """The label-embedding cache (one ``.npz`` file), computing missing labels with CLIP when it
    is installed. ``folder``: where the store lives (default ``<models>/text-embeddings``)."""

    def __init__(self, folder: Path | None = None, device: str = "cpu") -> None:
        self.folder = Path(folder) if folder is not None else models_dir() / TEXT_EMBEDDINGS_DIR
        self.device = device
        self._cache: dict[str, np.ndarray] | None = None

    @property
    def path(self) -> Path:
        return self.folder / STORE_NAME

    def _load(self) -> dict[str, np.ndarray]:
        if self._cache is None:
            self._cache = {}
            if self.path.is_file():
                try:
                    with np.load(self.path, allow_pickle=False) as data:
                        labels, vectors = data["labels"], data["vectors"]
                except (OSError, ValueError, KeyError) as exc:
                    raise ModelError(f"{self.path}: the text-embedding cache is unreadable ({exc}); delete it and "
                                     "run `foleyspace models fetch clip` again") from None
                if vectors.ndim != 2 or vectors.shape[1] != DIMENSION or len(labels) != len(vectors):
                    raise ModelError(f"{self.path}: the text-embedding cache holds {vectors.shape} vectors for "
                                     f"{len(labels)} labels, not {DIMENSION}-d ones; delete it and fetch again")
                self._cache = {str(k): v.astype(np.float32) for k, v in zip(labels, vectors)}
        return self._cache

    def cached(self, labels: list[str]) -> list[str]:
        """Those of ``labels`` whose embedding is in the store."""
        store = self._load()
        return [label for label in labels if normalized_label(label) in store]

    def get(self, labels: list[str]) -> np.ndarray:
        """``(len(labels), 512)`` float32 unit vectors; missing ones computed with CLIP (and
        stored), or :class:`ModelError` saying how to get them when CLIP is not available."""
        store = self._load()
        missing = sorted({normalized_label(x) for x in labels} - set(store))
        if missing:
            store.update(zip(missing, self._compute(missing)))
            self._save(store)
        return np.stack([store[normalized_label(x)] for x in labels])

    def put(self, labels: list[str], vectors: np.ndarray) -> None:
        """Store embeddings computed elsewhere (normalized to unit length)."""
        vectors = np.asarray(vectors, np.float32).reshape(len(labels), DIMENSION)
        store = self._load()
        for label, vector in zip(labels, vectors):
            store[normalized_label(label)] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        self._save(store)

    def _compute(self, labels: list[str]) -> np.ndarray:
        shown = ", ".join(repr(x) for x in labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        if find_spec("clip") is None:
            raise ModelError(f"the text embedding of {shown} is not cached in {self.path} and CLIP is not installed; "
                             "once online, `pip install git+https://github.com/ultralytics/CLIP.git` and run "
                             "`foleyspace models fetch clip` (the shipped vocabularies), or spatialize once with "
                             "this label to cache it")
        try:
            import torch
            from ultralytics.nn.text_model import build_text_model

            model = build_text_model(CLIP_VARIANT, device=self.device)
            with torch.inference_mode():
                feats = torch.cat([model.encode_text(t) for t in model.tokenize(labels).split(256)])
        except Exception as exc:  # download/network errors come in many types
            raise ModelError(f"cannot compute the text embedding of {shown} with CLIP ViT-B/32 "
                             f"({exc.__class__.__name__}: {exc}); its weights download once, when online") from None
        vectors = feats.float().cpu().numpy().reshape(len(labels), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _save(self, store: dict[str, np.ndarray]) -> None:
        """Write the store atomically (temporary file + rename)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
                labels = sorted(store)
                np.savez(fh, labels=np.array(labels), vectors=np.stack([store[k] for k in labels]))
        except OSError as exc:
            log.warning("could not cache text embeddings in %s: %s", self.folder, exc)


def precompute_vocabularies(device: str = "cpu") -> Path:
    """Cache the embeddings of every label of the shipped vocabularies (needs CLIP, online once)."""
    store = TextEmbeddings(device=device)
    for name in VOCABULARIES:
        store.get(load_vocabulary(name))
    return store.path
