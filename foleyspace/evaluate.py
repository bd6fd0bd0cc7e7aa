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
