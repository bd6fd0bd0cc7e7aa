"""Settings of a spatialization run, with the paper's defaults; "(ours)" marks our own choices."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Highest eq. 8 segment rate accepted (a new HRIR every ~1 ms); more buys nothing audible and
#: costs memory in proportion.
MAX_SEGMENT_RATE_HZ = 1000.0



@dataclass(frozen=True)
class AnalysisConfig:
    """Video analysis.

    Attributes:
        fps: analysis frame rate (paper: 25 fps).
        long_side: analysis frames are scaled so their long side has this many pixels (ours: 640).
    """

    fps: float = 25.0
    long_side: int = 640


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
        if self.scheme not in ("fine", "coarse"):
            raise ValueError(f"scheme must be 'fine' or 'coarse', not {self.scheme!r}")
        if not 0 < self.d_near_m <= self.d_far_m:
            raise ValueError("need 0 < d_near_m <= d_far_m")


@dataclass(frozen=True)
class DspRendererConfig:
    """Settings of the HRTF DSP renderer.

    Attributes:
        segment_rate_hz: eq. 8 N as segments per second, equal segments; ``None`` (default) = a
            segment starts at each trajectory position: per analysis frame for the fine scheme
            (25 fps: N = 200 per 8 s, as the paper) and per second for the coarse scheme (N = 8
            per 8 s), so boundaries sit exactly on the positions.
        distance_gain: apply the 1/r gain relative to the HRIR radius (ours).
        min_distance_m: the 1/r gain is clamped at this distance (ours).
        distance_delay: also shift the time of arrival with distance (§IV-A). Off by default
            (ours): cross-fading responses that differ by many samples comb-filters fast motion.
        speed_of_sound: for ``distance_delay``, m/s.
    """

    segment_rate_hz: float | None = None

    def __post_init__(self) -> None:
        rate = self.segment_rate_hz
        if rate is not None and not 0 < rate <= MAX_SEGMENT_RATE_HZ:
            raise ValueError(f"segment_rate_hz must be in (0, {MAX_SEGMENT_RATE_HZ:g}]")
    distance_gain: bool = True
    min_distance_m: float = 0.25
    distance_delay: bool = False
    speed_of_sound: float = 343.0


@dataclass(frozen=True)
class OutputConfig:
    """The stem file.

    Attributes:
        sample_rate: stem rate in Hz (48 kHz).
        subtype: libsndfile subtype (``"PCM_24"``: 24-bit).
        peak_dbfs: if the rendered stem would exceed this peak, it is scaled down to it (ours:
            −1 dBFS) and the applied gain is recorded in the sidecar; quieter stems are untouched.
    """

    sample_rate: int = 48000
    subtype: str = "PCM_24"
    peak_dbfs: float = -1.0


@dataclass(frozen=True)
class SpatializeConfig:
    """Everything that shapes a run besides the inputs."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    render: DspRendererConfig = field(default_factory=DspRendererConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @classmethod
    def for_scheme(cls, scheme: str) -> SpatializeConfig:
        """Paper defaults for a scheme: fine renders a segment per frame, coarse one per second
        (both follow the trajectory's positions, see ``DspRendererConfig.segment_rate_hz``)."""
        return cls(trajectory=TrajectoryConfig(scheme=scheme))
