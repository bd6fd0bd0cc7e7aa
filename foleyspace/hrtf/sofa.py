"""HRIRs from a SOFA ``SimpleFreeFieldHRIR`` file (HUTUBS, SADIE, KEMAR, …) via ``sofar``.

:func:`read_sofa` reads and validates a file (one-line :class:`~foleyspace.errors.InputError`
naming the file and the problem); :class:`SofaHrirSet` serves its responses at the stem rate.
Receiver 0 is taken as the left ear unless the file's ``ReceiverPosition`` says receiver 0 sits on
the right (negative y), in which case the ears are swapped. Directions follow SOFA (azimuth
counter-clockwise from straight ahead, positive = left; elevation positive up; degrees).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from foleyspace.errors import InputError
from foleyspace.coords import to_cartesian
from foleyspace.hrtf.directions import DIRECTION_SETS, select, wrap_azimuth

log = logging.getLogger(__name__)


#: How positions between measured directions are served (``--hrtf-interp``).
INTERPOLATIONS = ("nearest", "linear", "aligned")
#: The one SOFA convention FoleySpace renders with.
CONVENTION = "SimpleFreeFieldHRIR"
#: First bytes of an HDF5 file (netCDF-4, hence SOFA) and of a classic netCDF file.
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NETCDF_MAGIC = b"CDF"


@dataclass(frozen=True)
class SofaData:
    """What a ``SimpleFreeFieldHRIR`` file holds, validated (:func:`read_sofa`).

    Attributes:
        path: the file.
        convention: ``GLOBAL:SOFAConventions`` (always ``SimpleFreeFieldHRIR`` here).
        sample_rate: the file's sample rate, Hz.
        ir: ``(M, 2, N)`` float64 impulse responses, ear 0 = left, 1 = right (swapped from the
            file's order where its receiver 0 is the right ear), ``Data.Delay`` applied.
        directions_deg: ``(M, 2)`` azimuth in (−180°, 180°] (positive = left) and elevation.
        distances_m: ``(M,)`` source distance of each measurement, metres.
        radius_m: the measurement radius (median distance), metres.
        receivers_m: ``(2, 3)`` ear positions (left, right), metres, cartesian as in the file.
        swapped: whether the file's receiver 0 was the right ear.
        title, database, listener: ``GLOBAL:Title``, ``DatabaseName``, ``ListenerShortName`` ('' if absent).
    """

    path: Path
    convention: str
    sample_rate: float
    ir: np.ndarray = field(repr=False)
    directions_deg: np.ndarray = field(repr=False)
    distances_m: np.ndarray = field(repr=False)
    radius_m: float
    receivers_m: np.ndarray = field(repr=False)
    swapped: bool = False
    title: str = ""
    database: str = ""
    listener: str = ""

    @property
    def count(self) -> int:
        """Number of measured directions M."""
        return int(self.ir.shape[0])

    @property
    def taps(self) -> int:
        """Length N of each impulse response, samples at :attr:`sample_rate`."""
        return int(self.ir.shape[-1])


def _text(sofa: object, name: str) -> str:
    value = getattr(sofa, name, "")
    return " ".join(str(value).split()) if value is not None else ""


@contextmanager
def _named_sofa(path: Path) -> Iterator[Path]:
    """``path`` under a name ending in ``.sofa``: sofar replaces any other suffix with ``.sofa``
    (``h.bin`` would read ``h.sofa``), so other names are read through a link (or a copy)."""
    if path.suffix == ".sofa":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="foleyspace-sofa-") as folder:
        alias = Path(folder) / "data.sofa"
        try:
            alias.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, alias)
        yield alias


def _open_sofa(path: Path) -> object:
    """The ``sofar.Sofa`` of ``path``, or an :class:`InputError` saying why it cannot be read."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a SOFA file")
    if not path.is_file():
        raise InputError(f"{path}: no such SOFA file")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not (head.startswith(_HDF5_MAGIC) or head.startswith(_NETCDF_MAGIC)):
        raise InputError(f"{path}: not a SOFA file (not netCDF-4/HDF5 data)")
    import sofar  # imported here: only this backend needs it

    try:
        with warnings.catch_warnings(), _named_sofa(path) as readable:
            warnings.simplefilter("ignore")
            return sofar.read_sofa(str(readable), verify=False, verbose=False)
    except Exception as exc:  # sofar/netCDF raise many types for a damaged file
        detail = " ".join(str(exc).replace(f"'{path}'", "").replace(str(path), "").split()).strip(" :")[:120]
        raise InputError(f"{path}: not a readable SOFA file, truncated or damaged? "
                         f"({exc.__class__.__name__}{': ' + detail if detail else ''})") from None


def _array(sofa: object, name: str, path: Path, what: str) -> np.ndarray:
    value = getattr(sofa, name, None)
    if value is None:
        raise InputError(f"{path}: has no {what}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {what} is not numeric") from None


def _positions(pos: np.ndarray, kind: str, units: str, m: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``SourcePosition`` → ``(M, 2)`` azimuth/elevation in degrees and ``(M,)`` distances in metres."""
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] not in (1, m):
        raise InputError(f"{path}: SourcePosition has shape {pos.shape}; expected ({m}, 3)")
    if not np.isfinite(pos).all():
        raise InputError(f"{path}: SourcePosition holds NaN or infinite values")
    pos = np.broadcast_to(pos, (m, 3))
    if kind.startswith("cartesian"):
        r = np.linalg.norm(pos, axis=1)
        az = np.degrees(np.arctan2(pos[:, 1], pos[:, 0]))
        el = np.degrees(np.arctan2(pos[:, 2], np.hypot(pos[:, 0], pos[:, 1])))
    elif kind.startswith("spherical"):
        az, el, r = pos[:, 0].copy(), pos[:, 1].copy(), pos[:, 2].copy()
        if "rad" in units.split(",")[0]:  # radians instead of the usual degrees
            az, el = np.degrees(az), np.degrees(el)
    else:
        raise InputError(f"{path}: SourcePosition type {kind!r} is neither spherical nor cartesian")
    if (r <= 0).any():
        raise InputError(f"{path}: SourcePosition has {int((r <= 0).sum())} source(s) at zero or negative distance")
    return np.stack([wrap_azimuth(az), el], axis=1), np.asarray(r, float)


def _receivers(sofa: object) -> np.ndarray | None:
    """``ReceiverPosition`` as ``(R, 3)`` (the first measurement's where it varies), or ``None``."""
    value = getattr(sofa, "ReceiverPosition", None)
    try:
        rec = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    if rec.ndim == 3:
        rec = rec[:, :, 0]
    return rec if rec.ndim == 2 and rec.shape[1] == 3 and np.isfinite(rec).all() else None


def _apply_delay(ir: np.ndarray, delay: np.ndarray | None, path: Path) -> np.ndarray:
    """``Data.Delay`` (samples, ``(1|M, 2)``) applied as leading zeros (rounded to whole samples)."""
    if delay is None or delay.size == 0 or not np.any(delay):
        return ir
    if not np.isfinite(delay).all() or (delay < 0).any():
        raise InputError(f"{path}: Data.Delay holds negative, NaN or infinite values")
    delay = np.broadcast_to(delay.reshape(delay.shape[0], -1)[:, :2], (ir.shape[0], 2))
    shifts = np.rint(delay).astype(int)
    if np.abs(delay - shifts).max() > 1e-6:
        log.warning("%s: Data.Delay has fractional samples; rounded to whole samples", path)
    out = np.zeros((ir.shape[0], 2, ir.shape[-1] + int(shifts.max())))
    for m, ear in np.ndindex(ir.shape[0], 2):
        out[m, ear, shifts[m, ear]:shifts[m, ear] + ir.shape[-1]] = ir[m, ear]
    return out


def read_sofa(path: str | Path) -> SofaData:
    """Read and validate a SOFA ``SimpleFreeFieldHRIR`` file.

    Raises:
        InputError: one line naming the file and the problem: missing, not SOFA or damaged,
            another convention, not exactly 2 receivers, no measurements or no taps, NaN or
            infinite values in ``Data.IR`` / ``SourcePosition``, a missing or non-positive sample
            rate, all-zero responses.
    """
    path = Path(path)
    sofa = _open_sofa(path)
    convention = _text(sofa, "GLOBAL_SOFAConventions")
    if not convention:
        raise InputError(f"{path}: not a SOFA file (no SOFAConventions attribute)")
    if convention != CONVENTION:
        raise InputError(f"{path}: SOFA convention {convention!r} is not {CONVENTION} (head-related impulse responses)")
    ir = _array(sofa, "Data_IR", path, "Data.IR")
    if ir.ndim != 3:
        raise InputError(f"{path}: Data.IR has shape {ir.shape}; expected (M, 2, N)")
    m, receivers, n = ir.shape
    if receivers != 2:
        raise InputError(f"{path}: has {receivers} receiver(s); a binaural HRIR set needs exactly 2 (left and right ear)")
    if m == 0 or n == 0:
        raise InputError(f"{path}: Data.IR is empty ({m} measurements of {n} taps)")
    if not np.isfinite(ir).all():
        raise InputError(f"{path}: Data.IR holds {int((~np.isfinite(ir)).sum())} NaN or infinite value(s)")
    rate_values = _array(sofa, "Data_SamplingRate", path, "Data.SamplingRate").ravel()
    if rate_values.size == 0 or not np.isfinite(rate_values).all() or (rate_values <= 0).any():
        raise InputError(f"{path}: Data.SamplingRate is missing, non-positive or not finite ({rate_values.tolist()[:3]})")
    if np.ptp(rate_values) > 0:
        raise InputError(f"{path}: Data.SamplingRate varies between measurements")
    rate = float(rate_values[0])
    silent = ~np.any(ir != 0, axis=-1)  # (M, 2): responses with no non-zero sample
    if silent.all():
        raise InputError(f"{path}: every impulse response in Data.IR is zero")
    if silent.any():
        first = int(np.flatnonzero(silent.any(axis=1))[0])
        raise InputError(f"{path}: {int(silent.sum())} of {2 * m} impulse responses are all zero "
                         f"(the first at measurement {first})")
    pos = _array(sofa, "SourcePosition", path, "SourcePosition")
    directions, distances = _positions(pos, _text(sofa, "SourcePosition_Type").lower() or "spherical",
                                       _text(sofa, "SourcePosition_Units").lower(), m, path)
    delay = getattr(sofa, "Data_Delay", None)
    ir = _apply_delay(ir, None if delay is None else np.asarray(delay, float), path)
    rec = _receivers(sofa)
    swapped = rec is not None and rec.shape[0] == 2 and rec[0, 1] < 0 < rec[1, 1]
    if swapped:
        ir, rec = ir[:, ::-1, :], rec[::-1]
    if rec is None or rec.shape[0] != 2:
        rec = np.array([[0.0, 0.09, 0.0], [0.0, -0.09, 0.0]])  # not given: the usual ±9 cm
    return SofaData(path=path, convention=convention, sample_rate=rate, ir=np.ascontiguousarray(ir),
                    directions_deg=directions, distances_m=distances, radius_m=float(np.median(distances)),
                    receivers_m=np.asarray(rec, float), swapped=bool(swapped), title=_text(sofa, "GLOBAL_Title"),
                    database=_text(sofa, "GLOBAL_DatabaseName"), listener=_text(sofa, "GLOBAL_ListenerShortName"))


def resample_ir(ir: np.ndarray, from_rate: float, to_rate: int) -> np.ndarray:
    """Impulse responses ``(..., N)`` from ``from_rate`` to ``to_rate`` Hz (polyphase, linear phase,
    so onsets and interaural delays stay where they were in seconds)."""
    if math.isclose(from_rate, to_rate, rel_tol=0, abs_tol=1e-6):
        return ir
    from scipy.signal import resample_poly

    ratio = Fraction(int(to_rate), int(round(from_rate))).limit_denominator(1000)
    return resample_poly(ir, ratio.numerator, ratio.denominator, axis=-1)


@dataclass(frozen=True)
class SofaSettings:
    """Settings of the SOFA backend (ours).

    Attributes:
        interp: ``nearest`` (the closest measured direction), ``linear`` (barycentric mix of
            the three around it) or ``aligned`` (the same mix with each response's onset delay
            removed first and the interpolated delay re-applied, so nothing comb-filters).
        directions: which measured directions may be used: ``all``, or the paper's ``fine`` /
            ``coarse`` sets (:mod:`foleyspace.hrtf.directions`).
    """

    interp: str = "aligned"
    directions: str = "all"

    def __post_init__(self) -> None:
        if self.interp not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interp!r}")
        if self.directions not in DIRECTION_SETS:
            raise ValueError(f"direction set must be one of {', '.join(DIRECTION_SETS)}, not {self.directions!r}")


class SofaHrirSet:
    """Measured HRIRs; satisfies :class:`~foleyspace.hrtf.base.HrirSet`.

    Attributes:
        ir: ``(M, 2, taps)`` float64 responses at :attr:`sample_rate` (ear 0 = left) of the
            directions that ``config.directions`` keeps.
        unit: ``(M, 3)`` unit vectors of those directions (x forward, y left, z up).
        directions_deg: ``(M, 2)`` their azimuth (positive = left) and elevation, degrees.
        ref_distance_m: the measurement radius (median source distance of the file), metres.
        sample_rate: rate of :attr:`ir`, Hz; file_rate: the file's own rate, Hz.
        config: the :class:`SofaSettings`; name: a short description for the sidecar.
    """

    def __init__(self, path: str | Path, sample_rate: int = 48000, config: SofaSettings | None = None) -> None:
        self.config = config or SofaSettings()
        data = read_sofa(path)
        keep = select(self.config.directions, data.directions_deg)
        if len(keep) == 0:
            raise InputError(f"{data.path}: the direction set {self.config.directions!r} keeps none of its "
                             f"{data.count} measured directions (--hrtf-directions all uses every one)")
        self.directions_deg = data.directions_deg[keep]
        self.unit = to_cartesian(self.directions_deg[:, 0], self.directions_deg[:, 1], np.ones(len(keep)))
        self.ir = resample_ir(data.ir[keep], data.sample_rate, sample_rate)
        self.sample_rate = int(sample_rate)
        self.file_rate = data.sample_rate
        self.ref_distance_m = data.radius_m
        subset = "" if self.config.directions == "all" else f" of {data.count}, set {self.config.directions}"
        self.name = f"SOFA {data.path.name} ({len(keep)} directions{subset}, {self.ir.shape[-1]} taps)"
        log.info("loaded %s, measured at %.2f m, %g Hz", self.name, self.ref_distance_m, self.file_rate)

    @property
    def _ir(self) -> np.ndarray:
        """Alias of :attr:`ir` (older name)."""
        return self.ir

    @property
    def _unit(self) -> np.ndarray:
        """Alias of :attr:`unit` (older name)."""
        return self.unit

    def hrirs(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
        """``(N, 2, taps)`` responses for N directions, served as ``config.interp`` says
        (:mod:`foleyspace.hrtf.interpolate`: nearest, linear or onset-aligned barycentric mix of
        the measured triangle around each direction; the nearest measured direction across holes
        in the grid). ``taps`` is fixed for the set; a measured direction returns its response
        exactly (``aligned`` appends a few zeros: room for the onset shifts)."""
        interpolator = self.__dict__.get("_interpolator")
        if interpolator is None:  # built on first use: the hull and onsets cost ~0.2 s for 2702 directions
            from foleyspace.hrtf.interpolate import DirectionInterpolator

            interpolator = self.__dict__["_interpolator"] = DirectionInterpolator(self.ir, self.unit, self.config.interp)
        az = np.atleast_1d(np.asarray(azimuth_deg, float))
        el = np.atleast_1d(np.asarray(elevation_deg, float))
        return interpolator(to_cartesian(az, el, np.ones(len(az))))

    def describe(self) -> dict[str, object]:
        """For the sidecar: how directions between the measured ones are served."""
        return {"interpolation": self.config.interp, "direction_set": self.config.directions,
                "measured_directions": len(self.ir)}
