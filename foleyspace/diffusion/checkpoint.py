"""Checkpoints of the binaural DiffWave: save (atomic) and load, for training and for inference.

A checkpoint is a ``torch.save`` map of tensors and plain data only, so it loads with
``torch.load(weights_only=True)``::

    {"format": "foleyspace-diffusion/1", "config": DiffusionConfig.to_dict(),
     "code_version": "0.1.0 (git v0.1-12-gabc)", "step": int,
     "model": state_dict, "ema": state_dict | None, "optimizer": state_dict | None,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": [...]} | None,
     "extra": {...}}                # free plain data: the trainer's data position, ...

Every way a file can be unusable — missing, truncated, not a torch file, another format, a config
this code does not know, weights of the wrong shape — is one :class:`~foleyspace.errors.InputError`
line naming the file and the problem.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foleyspace import __version__
from foleyspace.atomic_file import atomic_path
from foleyspace.diffusion.config import DiffusionConfig
from foleyspace.diffusion.model import BinauralDiffWave
from foleyspace.errors import InputError

log = logging.getLogger(__name__)

FORMAT = "foleyspace-diffusion/1"
#: The first bytes of a ``torch.save`` file (a zip archive).
ZIP_MAGIC = b"PK\x03\x04"
#: Terminal colour codes, which some of PyTorch's messages hold.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def code_version() -> str:
    """``foleyspace.__version__``, with ``git describe`` of the checkout when there is one."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=Path(__file__).parent,
                                   capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return __version__
    text = described.stdout.strip()
    return f"{__version__} (git {text})" if described.returncode == 0 and text else __version__


@dataclass
class Checkpoint:
    """What a checkpoint holds (see the module docstring); ``ema`` ``None``: the model's own weights."""

    config: DiffusionConfig
    model: dict[str, torch.Tensor]
    step: int = 0
    ema: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) random states as plain data and tensors."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _plain(random.getstate()),
                             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    num = state["numpy"]
    np.random.set_state((num["kind"], num["keys"].numpy().astype(np.uint32), num["pos"], num["has_gauss"], num["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def save(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (a temporary file in the same folder, fsynced, renamed)."""
    path = Path(path)
    data = {"format": FORMAT, "config": ckpt.config.to_dict(), "code_version": ckpt.code_version or code_version(),
            "step": int(ckpt.step), "model": ckpt.model, "ema": ckpt.ema, "optimizer": ckpt.optimizer,
            "rng": ckpt.rng, "extra": ckpt.extra}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(data, handle)
    return path


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and check a checkpoint; :class:`InputError` (one line naming the file) if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise InputError(f"{path}: not a checkpoint file (a directory or a device)")
    with open(path, "rb") as handle:
        if handle.read(4) != ZIP_MAGIC:
            raise InputError(f"{path}: not a PyTorch checkpoint (torch.save writes a zip archive; this is another "
                             "kind of file)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip/pickle/unpickler errors of every kind: damaged, or objects that are not plain data
        text = _ANSI.sub("", str(exc)).strip()
        first = text.splitlines()[0][:160] if text else ""
        raise InputError(f"{path}: a damaged or truncated checkpoint, or one holding more than tensors and plain data "
                         f"({exc.__class__.__name__}{': ' + first if first else ''})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{path}: not a FoleySpace diffusion checkpoint (format {found!r}, expected {FORMAT!r})")
    try:
        config = DiffusionConfig.from_dict(data["config"])
        config.segment_samples  # NaN or huge numbers fail here too
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{path}: its model config cannot be used by this version ({exc})") from None
    model, ema = data.get("model"), data.get("ema")
    if not isinstance(model, dict) or (ema is not None and not isinstance(ema, dict)):
        raise InputError(f"{path}: holds no model weights")
    step, extra = data.get("step") or 0, data.get("extra") or {}
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(f"{path}: its step {str(step)[:40]!r} is not a whole number ≥ 0 (a damaged checkpoint)")
    for name, value in (("extra", extra), ("optimizer", data.get("optimizer")), ("rng", data.get("rng"))):
        if value is not None and not isinstance(value, dict):
            raise InputError(f"{path}: its {name!r} entry is a {type(value).__name__}, not a map (a damaged checkpoint)")
    return Checkpoint(config=config, model=model, step=step, ema=ema, optimizer=data.get("optimizer"),
                      rng=data.get("rng"), extra=dict(extra), code_version=str(data.get("code_version") or ""))


def build_model(path: str | os.PathLike, cfg: DiffusionConfig, weights: dict[str, torch.Tensor]) -> BinauralDiffWave:
    """A model of ``cfg`` holding ``weights``; :class:`InputError` naming ``path`` if they do not fit
    it or hold NaN or infinite values (a run that diverged)."""
    model = BinauralDiffWave(cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise InputError(f"{Path(path)}: its weights do not fit its {cfg.name!r} config ({detail[:200]})") from None
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{Path(path)}: its weights hold NaN or infinite values ({name}): the training diverged "
                             "before this step; use an earlier checkpoint")
    return model


def load_for_inference(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[BinauralDiffWave, DiffusionConfig]:
    """The model with the checkpoint's EMA weights (its own weights when it has no EMA), in eval
    mode on ``device``, and its config. Errors: :class:`InputError`, one line."""
    ckpt = load(path)
    model = build_model(path, ckpt.config, ckpt.ema if ckpt.ema is not None else ckpt.model)
    log.info("loaded %s: %s config, step %d, code %s", path, ckpt.config.name, ckpt.step, ckpt.code_version or "?")
    return model.to(device).eval(), ckpt.config
