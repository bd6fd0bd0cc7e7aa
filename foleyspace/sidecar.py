"""The sidecar JSON written beside a stem: the per-frame trajectory, what ran, and the settings.

Positions are in display pixels (``u`` right, ``v`` down; the picture as a player shows it) and SOFA listener coordinates
(x forward, y left, z up, metres; azimuth counter-clockwise from ahead, left positive; elevation
up positive); times are seconds from the range start.
"""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace import __version__
from foleyspace.coords import to_spherical
from foleyspace.job import Job
from foleyspace.localize.base import STATE_NAMES, BoxTrack
from foleyspace.stem import SIDECAR_FORMAT
from foleyspace.trajectory import SourcePath
from foleyspace.video import VideoInfo



def versions() -> dict[str, str]:
    """Versions of the libraries that shape the output."""
    import av
    import cv2
    import scipy
    import soundfile

    return {"foleyspace": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "av": av.__version__, "opencv": cv2.__version__,
            "soundfile": soundfile.__version__}


def _r(x: float, nd: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), nd)


def frame_rows(track: BoxTrack, path: SourcePath, scale: tuple[float, float],
               timeline_t: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per analysis frame; ``scale`` maps analysis to display pixels; ``timeline_t``: when
    the clip is retimed, the timeline second each frame is shown at (``None`` for none or a freeze frame)."""
    sx, sy = scale
    sph = to_spherical(path.xyz)
    rows = []
    for i in range(len(path.times_s)):
        extra = {} if timeline_t is None else {"t_timeline": _r(timeline_t[i])}
        box = track.boxes[i] if i < len(track) else np.full(4, np.nan)
        rows.append({
            "t": _r(path.times_s[i]), **extra, "detected": bool(path.detected[i]),
            "state": STATE_NAMES[int(track.state[i])] if i < len(track) else "lost",  # type: ignore[index]
            "confidence": _r(path.confidence[i], 3),
            "box": None if not np.all(np.isfinite(box)) else [_r(box[0] * sx, 1), _r(box[1] * sy, 1),
                                                               _r(box[2] * sx, 1), _r(box[3] * sy, 1)],
            "u_px": _r(path.u[i] * sx, 1), "v_px": _r(path.v[i] * sy, 1), "depth": _r(path.depth[i], 6),
            "distance_m": _r(sph[i, 2], 3), "x": _r(path.xyz[i, 0]), "y": _r(path.xyz[i, 1]), "z": _r(path.xyz[i, 2]),
            "azimuth_deg": _r(sph[i, 0], 2), "elevation_deg": _r(sph[i, 1], 2),
        })
    return rows


def sidecar_data(
    job: Job,
    info: VideoInfo,
    span: tuple[float, float],
    size: tuple[int, int],
    track: BoxTrack,
    path: SourcePath,
    samples: int,
    gain_db: float,
    backends: dict[str, dict[str, Any]],
    timings: dict[str, float],
    analysed: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The sidecar of a finished job.

    Args:
        span: the rendered source range ``(start_s, end_s)``.
        size: analysis frame size ``(w, h)``.
        backends: what ran, by kind (:func:`foleyspace.backends.describe`).
        timings: seconds spent per stage.
        analysed: the source range analysed when it differs from ``span`` (a freeze frame's
            context); frame times count from its start.
    """
    start, end = span
    first = (analysed or span)[0]
    rate = job.config.output.sample_rate
    warp = job.warp
    timeline_t = None
    if not (warp.is_identity or warp.is_freeze):
        timeline_t = warp.timeline_time(first + np.asarray(path.times_s, float), start, end)
    return {
        "format": SIDECAR_FORMAT,
        "stem": {"path": str(Path(job.output).resolve()), "sample_rate": rate, "channels": 2, "samples": samples,
                 "subtype": job.config.output.subtype, "gain_db": round(gain_db, 2)},
        "source": {"video": str(Path(job.video).resolve()), "start_s": start, "end_s": end,
                   "width": info.width, "height": info.height, "fps": info.fps,
                   "display": {"coded_width": info.coded_width or info.width,
                               "coded_height": info.coded_height or info.height, "rotation": info.rotation,
                               "mirror": info.mirror, "sample_aspect": float(info.sample_aspect)},
                   "audio": str(job.audio) if job.audio else "generated" if job.generate_audio else "clip", "audio_start_s": job.audio_start_s,
                   **({"analysed_start_s": analysed[0], "analysed_end_s": analysed[1]} if analysed else {})},
        "timeline": {"speed": warp.speed, "hold_s": warp.hold_s, "duration_s": samples / rate,
                     "retime": "none" if warp.is_identity else warp.describe()},
        "analysis": {"fps": job.config.analysis.fps, "width": size[0], "height": size[1], "label": track.label,
                     "requested_label": job.label, **({"label_choice": track.details} if track.details else {}),
                     "detected_fraction": round(float(np.mean(path.detected)), 3),
                     "state_fractions": {name: round(float(np.mean(track.state == code)), 3)
                                         for code, name in enumerate(STATE_NAMES)},
                     **{kind: b["name"] for kind, b in backends.items()},
                     **{k: round(v, 3) for k, v in timings.items()}},
        "backends": backends,
        "conventions": "SOFA: x forward, y left, z up (m); azimuth deg CCW from ahead (left +), elevation up +; "
                       "pixels u right, v down in display pixels (the picture as a player shows it: "
                       "source.display says how it is stored); t seconds from the range start "
                       "(analysed range for a freeze frame); t_timeline seconds from the clip's start "
                       "on the timeline (retimed clips)",
        "settings": asdict(job.config),
        "versions": versions(),
        "frames": frame_rows(track, path, (info.width / size[0], info.height / size[1]), timeline_t),
    }
