"""MMAudio: a mono sound generated from the clip's picture and its label (the paper's mono source).

Used for ``--audio generate`` when the ``mmaudio`` package (github.com/hkchengrex/MMAudio, weights
CC-BY-NC) is importable; its weights must already be where MMAudio keeps them (running its own
``demo.py`` once, online, downloads them) — a job never downloads. MMAudio reads the video from
its start, so a range is generated from 0 s to its end and cut; ranges ending after
``max_duration_s`` are refused (the model was trained on 8 s clips). Not tested against real
MMAudio weights here (none can be downloaded); the calls follow MMAudio's ``demo.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.errors import InputError
from foleyspace.models import ModelError
from foleyspace.mono import downmix, fit_length, resample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MMAudioSettings:
    """MMAudio generation settings (MMAudio's demo defaults).

    Attributes:
        variant: ``small_16k``, ``small_44k``, ``medium_44k``, ``large_44k`` or ``large_44k_v2``.
        num_steps: flow-matching Euler steps.
        cfg_strength: classifier-free guidance strength.
        seed: generator seed (the same job gives the same sound).
        max_duration_s: longest range end generated, seconds from the clip start (ours: 10 s).
    """

    variant: str = "large_44k_v2"
    num_steps: int = 25
    cfg_strength: float = 4.5
    seed: int = 42
    max_duration_s: float = 10.0


def _load(variant: str, device: str) -> tuple[Any, Any, Any]:
    """MMAudio's network, feature utilities and sequence config for ``variant`` (weights on disk)."""
    import torch
    from mmaudio.eval_utils import all_model_cfg
    from mmaudio.model.networks import get_my_mmaudio
    from mmaudio.model.utils.features_utils import FeaturesUtils

    if variant not in all_model_cfg:
        raise ModelError(f"unknown MMAudio variant {variant!r}; known: {', '.join(sorted(all_model_cfg))}")
    cfg = all_model_cfg[variant]
    files = [cfg.model_path, cfg.vae_path, cfg.synchformer_ckpt] + ([cfg.bigvgan_16k_path] if cfg.bigvgan_16k_path else [])
    missing = [str(f) for f in files if f is not None and not Path(f).is_file()]
    if missing:
        raise ModelError(f"MMAudio {variant} weights are missing ({', '.join(missing)}); run MMAudio's demo.py once "
                         "online to download them, or place them there")
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    net = get_my_mmaudio(cfg.model_name).to(device, dtype).eval()
    net.load_weights(torch.load(cfg.model_path, map_location=device, weights_only=True))
    features = FeaturesUtils(tod_vae_ckpt=cfg.vae_path, synchformer_ckpt=cfg.synchformer_ckpt, enable_conditions=True,
                             mode=cfg.mode, bigvgan_vocoder_ckpt=cfg.bigvgan_16k_path,
                             need_vae_encoder=False).to(device, dtype).eval()
    return net, features, cfg.seq_cfg


class MMAudioMono:
    """The generated mono source of one job; satisfies :class:`~foleyspace.mono.MonoSource`."""

    timing = "source"  # made from the source picture: a retimed clip plays it varispeed

    def __init__(self, job: Any, device: str = "cpu", models: Any = None, config: MMAudioSettings | None = None) -> None:
        self.config = config or MMAudioSettings()
        self.video = Path(job.video)
        self.prompt = job.label or ""
        self.device = device
        self.name = f"mmaudio {self.config.variant}" + (f" ({self.prompt!r})" if self.prompt else "")
        key = (f"mmaudio {self.config.variant}", self.config.variant, device)
        load = lambda: _load(self.config.variant, device)  # noqa: E731
        self.net, self.features, self.seq_cfg = models.get(key, load) if models else load()

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        if end_s > self.config.max_duration_s:
            raise InputError(f"{self.video}: MMAudio generates up to {self.config.max_duration_s:g} s from the clip "
                             f"start and this range ends at {end_s:.2f} s; use a shorter range or --audio FILE")
        import torch
        from mmaudio.eval_utils import generate, load_video
        from mmaudio.model.flow_matching import FlowMatching

        info = load_video(self.video, end_s)
        self.seq_cfg.duration = info.duration_sec
        self.net.update_seq_lengths(self.seq_cfg.latent_seq_len, self.seq_cfg.clip_seq_len, self.seq_cfg.sync_seq_len)
        rng = torch.Generator(device=self.device)
        rng.manual_seed(self.config.seed)
        with torch.inference_mode():
            audio = generate(info.clip_frames.unsqueeze(0), info.sync_frames.unsqueeze(0), [self.prompt],
                             negative_text=[""], feature_utils=self.features, net=self.net,
                             fm=FlowMatching(min_sigma=0, inference_mode="euler", num_steps=self.config.num_steps),
                             rng=rng, cfg_strength=self.config.cfg_strength)
        rate = int(self.seq_cfg.sampling_rate)
        x = downmix(audio.float().cpu().numpy()[0])
        x = x[int(round(start_s * rate)):]
        return fit_length(resample(x, rate, sample_rate), int(round((end_s - start_s) * sample_rate)))
