"""Settings of a spatialization run, with the paper's defaults; "(ours)" marks our own choices.

The stages every run shares (analysis, trajectory, output) are configured here; each backend's
own settings live beside it (e.g. :class:`foleyspace.render.DspRendererConfig`) and reach it
through :attr:`SpatializeConfig.settings`. Standard library only: job specs are validated
without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foleyspace.blocks import BLOCK_SAMPLES

#: The trajectory schemes (paper §III-E): a position per frame, or 5×3 grid cells once per second.
SCHEMES = ("fine", "coarse")
#: Highest eq. 8 segment rate accepted (a new HRIR every ~1 ms); more buys nothing audible and
#: costs memory in proportion.
MAX_SEGMENT_RATE_HZ = 1000.0
#: Accepted analysis long sides in pixels.
LONG_SIDE_RANGE = (32, 8192)
#: The backend name that lets the registry choose (see :mod:`foleyspace.backends`).
AUTO = "auto"

@dataclass(frozen=True)
class AnalysisConfig:
    """Video analysis.

    Attributes:
        fps: analysis frame rate (paper: 25 fps).
        long_side: analysis frames are scaled so their long side has this many pixels (ours: 640).
        freeze_context_s: a freeze frame is located by analysing this many seconds of source
            either side of the held frame (ours: 0.5 s; motion needs more than one frame).
    """

    fps: float = 25.0
    long_side: int = 640
    freeze_context_s: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = LONG_SIDE_RANGE
        if isinstance(self.long_side, bool) or not isinstance(self.long_side, int) or not lo <= self.long_side <= hi:
            raise ValueError(f"long_side must be an integer from {lo} to {hi} pixels")
        if not self.fps > 0:
            raise ValueError("fps must be positive")


@dataclass(frozen=True)
class TrajectoryConfig:
    """Mapping from pixels and depth to the 3-D path (eq. 3–7, §III-E).

    Attributes:
        scheme: ``"fine"`` (a position per frame) or ``"coarse"`` (5×3 grid cells, once per second).
        x_max_m: largest lateral distance of the source, eq. 3 (ours: 1.47 m, the HUTUBS radius).
        d_near_m, d_far_m: listening distances the clip's depth range maps to, eq. 5 (ours: 1–6 m).
        depth_min_relative_span: eq. 5 (ours) — the min–max span is at least this fraction of the
            clip's largest depth, so a depth that hardly changes is not stretched to d_near…d_far.
        outlier_percentile: eq. 7 — steps above this percentile of the clip are outliers.
        grid_columns, grid_rows, depth_levels: the coarse scheme (paper: 5 × 3 cells, 5 depths).
    """

    scheme: str = "fine"
    x_max_m: float = 1.47
    d_near_m: float = 1.0
    d_far_m: float = 6.0
    depth_min_relative_span: float = 0.5
    outlier_percentile: float = 95.0
    grid_columns: int = 5
    grid_rows: int = 3
    depth_levels: int = 5

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if not 0 < self.d_near_m <= self.d_far_m:
            raise ValueError("need 0 < d_near_m <= d_far_m")


@dataclass(frozen=True)
class OutputConfig:
    """The stem file.

    Attributes:
        sample_rate: stem rate in Hz (48 kHz).
        subtype: libsndfile subtype (``"PCM_24"``: 24-bit).
        peak_dbfs: if the rendered stem would exceed this peak, it is scaled down to it (ours:
            −1 dBFS) and the applied gain is recorded in the sidecar; quieter stems are untouched.
        block_samples: the sound is read, rendered and written this many samples at a time
            (ours: 2^17, ≈ 2.7 s at 48 kHz), so memory follows the block, not the clip; the stem
            does not depend on it.
    """

    sample_rate: int = 48000
    subtype: str = "PCM_24"
    peak_dbfs: float = -1.0
    block_samples: int = BLOCK_SAMPLES

    def __post_init__(self) -> None:
        if not isinstance(self.block_samples, int) or self.block_samples < 1:
            raise ValueError("block_samples must be a positive whole number")


@dataclass(frozen=True)
class SpatializeConfig:
    """Everything that shapes a run besides the inputs.

    Attributes:
        analysis, trajectory, output: the shared stages.
        localizer, depth, renderer: backend names from the registry (:mod:`foleyspace.backends`),
            or ``"auto"`` to let it choose (the seeded tracker when the job has a box, the
            offline backends otherwise).
        settings: per-backend settings keyed ``"kind:name"``, e.g.
            ``{"renderer:dsp": DspRendererConfig(...)}``; a backend without an entry runs with its
            defaults.
    """

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    localizer: str = AUTO
    depth: str = AUTO
    renderer: str = AUTO
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_scheme(cls, scheme: str) -> SpatializeConfig:
        """Paper defaults for a scheme: fine renders a segment per frame, coarse one per second
        (both follow the trajectory's positions, see ``DspRendererConfig.segment_rate_hz``)."""
        return cls(trajectory=TrajectoryConfig(scheme=scheme))

    def settings_for(self, kind: str, backend: str) -> Any:
        """The settings given for the ``kind`` backend ``backend``, or ``None`` (its defaults)."""
        return self.settings.get(f"{kind}:{backend}")
