"""Every hyper-parameter of the binaural DiffWave in one dataclass, with named configurations.

``paper`` is the paper's model (§III-D, §V-D; DESIGN §2): 60 residual layers, 128 residual
channels, dilation cycle 10, 2 output channels, T = 200 diffusion steps with a linear β from
1e-4 to 0.02, 50 inference steps, 200k training steps at batch 12. ``small`` fits a short GPU run
and ``tiny`` trains on a CPU in tests. Everything the paper does not state is marked (ours).

Signals are at :attr:`DiffusionConfig.sample_rate` (ours: 16 kHz; the pipeline resamples to the
48 kHz stem). Trajectories are ``(x, y, z)`` metres, SOFA axes (x forward, y left, z up).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

#: DiffWave's fast-sampling noise schedule (6 steps), used by the ``fast`` sampler.
FAST_SCHEDULE = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)
#: The sampler schedules: ``standard`` (``inference_steps`` respaced steps) and ``fast`` (DiffWave's).
SCHEDULES = ("standard", "fast")
#: How the trajectory enters the condition block (``DiffusionConfig.trajectory_condition``).
TRAJECTORY_CONDITIONS = ("xyz", "direction")
#: Distance scale of the ``direction`` trajectory condition, metres (the fine scheme's far end).
DIRECTION_DISTANCE_SCALE_M = 6.0
#: Largest sampler seed (a 63-bit integer).
MAX_SEED = (1 << 63) - 1


@dataclass(frozen=True)
class DiffusionConfig:
    """Model, diffusion, data and training settings.

    Attributes:
        name: the named configuration this came from (``paper``, ``small``, ``tiny``) or ``custom``.
        residual_layers: DiffWave residual layers (paper: 60).
        residual_channels: channels of each residual layer (paper: 128).
        dilation_cycle: dilation doubles per layer and restarts every this many layers (paper: 10).
        out_channels: output channels, left and right (2).
        condition_channels: width of the condition block's conv stack (ours).
        condition_layers: conv layers in the condition block (ours).
        condition_kernel: kernel size of those layers (ours).
        embedding_dim: sinusoidal diffusion-step embedding size (DiffWave: 128).
        embedding_hidden: width of the embedding MLP (DiffWave: 512).
        diffusion_steps: T, training steps of the forward process (paper: 200).
        beta_start, beta_end: linear β schedule ends (ours, as BinauralGrad: 1e-4 → 0.02).
        inference_steps: steps of the standard sampler (paper: 50).
        fast_schedule: β of DiffWave's fast sampler (6 steps).
        sample_rate: model sample rate in Hz (ours: 16 kHz).
        segment_s: training segment length in seconds (paper: 8 s).
        positions: trajectory positions per segment (paper fine scheme: 200 per 8 s; coarse: 8).
        batch_size, learning_rate, max_steps: training (paper: batch 12, 200k steps; lr ours, DiffWave's 2e-4).
        grad_clip: gradient-norm clip (ours).
        ema_decay: EMA of the weights used for sampling (ours).
        chunk_overlap_s: cross-fade between chunks when a clip is longer than a segment (ours).
        mono_level_dbfs: level convention of the data (ours): the training set's mono segments are
            scaled to this RMS (dB re full scale; the set builder's ``level_dbfs``, −20) and their
            binaural targets by the same gain; at inference each chunk's mono (one training segment
            long) is scaled to it on its own RMS and the output scaled back, so the model hears the
            levels it was trained on.
        data_gain_db: gain of the diffusion space (ours; the paper states none, DiffWave trains on
            the raw waveform, i.e. 0 dB): training multiplies the mono condition and the binaural
            target by ``10^(g/20)`` before the forward process, and the sampler multiplies the mono
            by it and divides its output by it. At 0 dB the fine-scheme targets (mono at −20 dBFS,
            HRIR and 1/r gain: about −43 dBFS on average, −50 dBFS at 6 m) lie at or below the
            forward process's smallest noise (√β_0 = 0.01, −40 dBFS), so the model never sees a
            clean target; see docs/method.md for the measurements behind the defaults. The field's
            default, 0 dB, is what checkpoints written before it existed were trained with; the
            named configs set :data:`DATA_GAIN_DB`.
        trajectory_condition: how the trajectory enters the condition block: ``xyz`` (paper: the
            metres x, y, z) or ``direction`` (ours: the unit direction x/r, y/r, z/r and r / 6 m,
            so every input channel is O(1)).
        condition_delay: delay the mono condition by the source's arrival delay (ours; the paper
            feeds the mono as it is, ``False``): sample n of the mono the model sees is the mono at
            ``n − round((r(n) − 0.25 m)/343 m/s · rate)``, r the distance at n clamped to 0.25–6 m —
            the distance delay the training targets carry (§IV-A, the DSP renderer's
            ``distance_delay``), up to 16.8 ms. The model then only has to reach over the HRIR
            itself (about a millisecond) instead of the whole delay (:func:`condition_reach`).
    """

    name: str = "paper"
    residual_layers: int = 60
    residual_channels: int = 128
    dilation_cycle: int = 10
    out_channels: int = 2
    condition_channels: int = 64
    condition_layers: int = 3
    condition_kernel: int = 3
    embedding_dim: int = 128
    embedding_hidden: int = 512
    diffusion_steps: int = 200
    beta_start: float = 1e-4
    beta_end: float = 0.02
    inference_steps: int = 50
    fast_schedule: tuple[float, ...] = FAST_SCHEDULE
    sample_rate: int = 16000
    segment_s: float = 8.0
    positions: int = 200
    batch_size: int = 12
    learning_rate: float = 2e-4
    max_steps: int = 200_000
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    chunk_overlap_s: float = 0.5
    mono_level_dbfs: float = -20.0
    data_gain_db: float = 0.0
    trajectory_condition: str = "xyz"
    condition_delay: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):  # NaN passes `x < 1` style checks: refuse it first
            value = getattr(self, field.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ValueError(f"{field.name} must be a finite number, not {value!r}")
        if self.residual_layers < 1 or self.residual_channels < 1 or self.dilation_cycle < 1:
            raise ValueError("residual_layers, residual_channels and dilation_cycle must be positive")
        if self.out_channels != 2:
            raise ValueError("a binaural model has 2 output channels")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError("need 0 < beta_start < beta_end < 1")
        if not 1 <= self.inference_steps <= self.diffusion_steps:
            raise ValueError("inference_steps must be in [1, diffusion_steps]")
        if self.sample_rate < 1000 or self.segment_s <= 0 or self.positions < 1:
            raise ValueError("sample_rate, segment_s and positions must be positive")
        if not 0 <= self.chunk_overlap_s < self.segment_s / 2:
            raise ValueError("chunk_overlap_s must be in [0, segment_s / 2)")
        if not -80.0 <= self.mono_level_dbfs <= 0.0:
            raise ValueError("mono_level_dbfs must be in [-80, 0] dB re full scale")
        if not -40.0 <= self.data_gain_db <= 60.0:
            raise ValueError("data_gain_db must be in [-40, 60] dB")
        if self.trajectory_condition not in TRAJECTORY_CONDITIONS:
            raise ValueError(f"trajectory_condition must be one of {', '.join(TRAJECTORY_CONDITIONS)}")
        if self.batch_size < 1 or self.max_steps < 1 or self.learning_rate <= 0 or self.grad_clip <= 0:
            raise ValueError("batch_size, max_steps, learning_rate and grad_clip must be positive")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1)")
        if not self.fast_schedule or not all(0 < b < 1 for b in self.fast_schedule):
            raise ValueError("fast_schedule must be noise levels (betas) in (0, 1)")

    @property
    def data_gain(self) -> float:
        """The diffusion space's linear gain, ``10^(data_gain_db/20)``."""
        return float(10.0 ** (self.data_gain_db / 20.0))

    @property
    def segment_samples(self) -> int:
        """Samples in one training segment."""
        return int(round(self.segment_s * self.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and manifests)."""
        data = asdict(self)
        data["fast_schedule"] = list(self.fast_schedule)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiffusionConfig":
        """The config ``to_dict`` wrote; unknown keys are an error (a checkpoint from other code)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        values = dict(data)
        if "fast_schedule" in values:
            values["fast_schedule"] = tuple(float(b) for b in values["fast_schedule"])
        return cls(**values)


#: The diffusion space's gain of the named configs (ours, every config: the paper states none): it
#: lifts the fine-scheme targets (about −43 dBFS) 30 dB above the data's level, to about 8× the
#: forward process's smallest noise. Measured on the tiny config (docs/method.md, "Data scaling").
DATA_GAIN_DB = 30.0

CONFIGS: dict[str, DiffusionConfig] = {
    # the paper's hyper-parameters; the trajectory in metres and the mono as it is (paper), the data gain ours
    "paper": DiffusionConfig(data_gain_db=DATA_GAIN_DB),
    # fits a ~8-minute single-GPU run: a third of the depth, half the width, 2 s segments (ours);
    # its layers reach 2048 samples (128 ms), far beyond the 16.8 ms distance delay
    "small": DiffusionConfig(name="small", residual_layers=20, residual_channels=64, dilation_cycle=10,
                             condition_channels=32, segment_s=2.0, positions=50, batch_size=16,
                             max_steps=20_000, data_gain_db=DATA_GAIN_DB),
    # trains on a 2-core CPU in tests: 4 layers of 16 channels, 8 kHz, 1 s segments (ours). They reach
    # 16 samples (2 ms), not the 134 of the distance delay: the mono is delayed by the distance before
    # it enters (condition_delay), and the trajectory enters as direction + distance/6 m (ours)
    "tiny": DiffusionConfig(name="tiny", residual_layers=4, residual_channels=16, dilation_cycle=4,
                            condition_channels=8, condition_layers=2, embedding_dim=32, embedding_hidden=64,
                            sample_rate=8000, segment_s=1.0, positions=25, batch_size=4, learning_rate=1e-3,
                            max_steps=400, ema_decay=0.99, chunk_overlap_s=0.1, data_gain_db=DATA_GAIN_DB,
                            trajectory_condition="direction", condition_delay=True),
}


def named_config(name: str, **overrides: Any) -> DiffusionConfig:
    """A named configuration, with fields overridden (e.g. ``positions=8`` for the coarse scheme).

    Raises:
        ValueError: an unknown name or field.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown diffusion config {name!r}; known: {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **overrides) if overrides else CONFIGS[name]


@dataclass(frozen=True)
class DiffusionRendererSettings:
    """Settings of the ``diffusion`` renderer (``SpatializeConfig.settings["renderer:diffusion"]``).

    Attributes:
        checkpoint: absolute path of a trained checkpoint (``--checkpoint``, option ``checkpoint``);
            ``None`` leaves the renderer unusable (``auto`` never picks it then).
        schedule: ``standard`` (the config's ``inference_steps``, paper: 50) or ``fast``
            (DiffWave's 6 steps) — ``--diffusion-steps``, option ``diffusion_schedule``.
        seed: the sampler's seed; the same seed, checkpoint and device give the same stem.
    """

    checkpoint: str | None = None
    schedule: str = "standard"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}")


def checkpoint_given(settings: Any) -> bool:
    """Whether renderer settings name a checkpoint (the registry's condition for ``diffusion``)."""
    return isinstance(settings, DiffusionRendererSettings) and settings.checkpoint is not None
