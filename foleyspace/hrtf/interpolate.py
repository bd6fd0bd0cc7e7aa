"""HRIRs between measured directions (ours, beyond the paper): nearest, linear and onset-aligned.

A measured set gives responses ``ir`` ``(M, 2, taps)`` at unit directions ``unit`` ``(M, 3)``
(SOFA: x forward, y left, z up). A query direction q is served by the triangle of measured
directions around it:

* **Triangulation.** The convex hull of the unit vectors (``scipy.spatial.ConvexHull``) is the
  spherical Delaunay triangulation of the measurement grid. The ray from the head along q leaves
  the hull through one facet f (the facet maximising ``(n_f·q)/h_f`` among those whose plane
  ``n_f·x = h_f`` lies in front of the origin, ``h_f > 0``); q = Σ λ_i v_i with λ = V_f⁻ᵀ q, and
  the weights are ``w = λ / Σλ`` — the barycentric coordinates of the ray's crossing of the facet
  (gnomonic projection; VBAP's normalised gains). They are ≥ 0, sum to 1, and a measured direction
  gets weight 1 on itself (weights below :attr:`InterpolatorConfig.snap` are set to 0).
* **Holes.** A set that covers only part of the sphere (nothing below −45°, the paper's fine or
  coarse subsets) still has a closed hull whose facets span the gap. A facet's plane cuts the
  sphere in its circumcircle, of angular radius ``arccos(h_f)``; the triangulation is Delaunay, so
  a facet over a hole has a circumcircle as wide as the hole. A facet whose circumradius exceeds
  :attr:`InterpolatorConfig.gap_factor` (2) times the set's median is a *gap facet* (measured:
  KU100 all directions 2.5–2.6°; the human set of ``sam_sofa`` 5.6° median, 7.8° at the 90th
  percentile, 45° over its hole below −45°; the paper's fine subsets 50–90° outside the frontal
  span; its coarse set 21–22° inside, 47–88° on the flat faces closing the patch). A query there,
  one whose ray misses the hull, and any query when the directions do not span 3-D (e.g. a
  horizontal-plane-only set) is served by the **nearest measured direction**, not by a mix of
  responses tens of degrees away.
* **Onsets.** Each response's onset (samples) is the first crossing of
  ``10^(threshold_db/20)`` × the peak by its envelope, the magnitude of the analytic signal
  upsampled ×``onset_upsample`` by zero-padding the spectrum (band-limited interpolation), the
  crossing located between the two upsampled samples around it by linear interpolation. A
  threshold on the broadband envelope relative to the peak is the leading edge that
  cross-fading two responses would comb-filter; it does not depend on the response's level or
  polarity, and what alignment needs is that neighbours get *consistent* values (a common bias
  cancels in ``d − d_i``). The default, −10 dB, was chosen on the KU100 set (2702 directions):
  the onsets of a facet's three vertices differ by 0.8 / 2.1 / 3.6 samples (median / 99th
  percentile / largest), against 0.7 / 4.8 / 8.5 at −20 dB, where the weak precursor of the
  shadowed ear's response is taken for the onset of some directions and not of their
  neighbours; its ITD at ±90° is 0.65 ms (0.47 ms at −20 dB), the dummy head's known value.
  Neighbours' onset differences then also agree best with their cross-correlation lags (median
  0.06, 99th percentile 1.5 samples; −20 dB: 0.13 / 4.0; envelope peak: 8.9 and the lag against
  the minimum-phase response: 3.0 at the 99th percentile).
* **Methods.** ``nearest``: the closest measured direction (great circle). ``linear``:
  ``Σ w_i h_i`` — responses with different onsets add like two taps of a comb filter. ``aligned``:
  per ear, with ``d = Σ w_i d_i`` the weight-averaged onset, ``Σ w_i · shift(h_i, d − d_i)`` —
  each vertex is moved once, by a fractional (band-limited, linear-phase) shift, onto the
  interpolated onset, so the mix adds aligned responses and its time of arrival moves smoothly
  between the vertices'. A measured direction (one weight 1) is returned exactly, unshifted.

Output length is fixed per set: ``taps`` for nearest/linear, ``taps + pad`` for aligned, where
``pad`` is the largest onset spread within any interpolating facet (rounded up), so later shifts
keep their tails. Shifts are applied in an FFT of length ≥ ``taps + 2·pad``; what a shift moves
earlier than sample 0 wraps into the discarded part (pre-onset samples only).

Batches: every row is computed on its own (no BLAS, per-row FFTs), so a batch split in two gives
the same rows bit for bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: The interpolation methods (``--hrtf-interp``).
METHODS = ("nearest", "linear", "aligned")


@dataclass(frozen=True)
class InterpolatorConfig:
    """Settings of the direction interpolator (ours).

    Attributes:
        gap_factor: a hull facet whose circumradius exceeds this × the set's median is a hole
            in the measurement grid: queries there get the nearest measured direction.
        onset_threshold_db: onset = first crossing of this level relative to the envelope's peak, dB.
        onset_upsample: band-limited upsampling factor of the onset search (precision 1/this sample).
        snap: barycentric weights below this are set to 0 (so measured directions come back exactly).
    """

    gap_factor: float = 2.0
    onset_threshold_db: float = -10.0
    onset_upsample: int = 8
    snap: float = 1e-9


@dataclass(frozen=True)
class Triangulation:
    """The measurement sphere cut into triangles.

    Attributes:
        simplices: ``(F, 3)`` vertex indices of each facet.
        normals, heights: facet planes ``normals[f]·x = heights[f]`` (outward unit normals).
        inverse: ``(F, 3, 3)``, ``λ = inverse[f] @ q`` gives q = Σ λ_i v_i (zeros for unusable facets).
        usable: facets that may interpolate: in front of the origin and not a gap.
        circumradius_deg: angular radius of each facet's circumcircle on the sphere, degrees.
        vertex_facets: ``(M, D)`` the usable facets around each direction (−1 pads).
    """

    simplices: np.ndarray
    normals: np.ndarray
    heights: np.ndarray
    inverse: np.ndarray
    usable: np.ndarray
    circumradius_deg: np.ndarray
    vertex_facets: np.ndarray


def onset_delays(ir: np.ndarray, threshold_db: float = -10.0, upsample: int = 8) -> np.ndarray:
    """Onset of each response ``(..., taps)`` in samples (float, precision 1/``upsample``).

    The first crossing of ``10^(threshold_db/20)`` × peak by the band-limited (×``upsample``)
    analytic envelope, linearly interpolated between the upsampled samples around it. An
    all-zero response has onset 0.
    """
    from scipy.fft import ifft, rfft

    ir = np.asarray(ir, float)
    taps = ir.shape[-1]
    n = taps * int(upsample)
    spec = rfft(ir, axis=-1)
    full = np.zeros(ir.shape[:-1] + (n,), complex)
    k = spec.shape[-1]
    full[..., :k] = spec
    full[..., 1 : k - (taps % 2 == 0)] *= 2.0  # analytic signal: positive frequencies doubled, Nyquist kept
    env = np.abs(ifft(full, axis=-1))
    peak = env.max(axis=-1, keepdims=True)
    level = peak * 10.0 ** (threshold_db / 20.0)
    above = env >= level
    first = np.argmax(above, axis=-1)
    prev = np.maximum(first - 1, 0)
    e0 = np.take_along_axis(env, prev[..., None], -1)[..., 0]
    e1 = np.take_along_axis(env, first[..., None], -1)[..., 0]
    lvl = level[..., 0]
    frac = np.where(e1 > e0, (lvl - e0) / np.where(e1 > e0, e1 - e0, 1.0), 1.0)
    onset = np.where(first > 0, prev + np.clip(frac, 0.0, 1.0), 0.0) / upsample
    return np.where(peak[..., 0] > 0, onset, 0.0)


def _dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for 3-vectors, element by element (no BLAS: each entry independent of the batch)."""
    return a[:, None, 0] * b[None, :, 0] + a[:, None, 1] * b[None, :, 1] + a[:, None, 2] * b[None, :, 2]


def nearest_index(unit: np.ndarray, queries: np.ndarray, tree=None) -> np.ndarray:
    """Index of the measured unit direction ``(M, 3)`` nearest (great circle) each unit query
    ``(n, 3)``; ``tree``: an optional ``scipy.spatial.cKDTree`` of ``unit`` (same answer, faster:
    the chord length grows with the angle)."""
    if tree is not None:
        return np.asarray(tree.query(queries)[1], np.int64)
    return np.argmax(_dot_rows(queries, unit), axis=1)


def triangulate(unit: np.ndarray, gap_factor: float = 2.0) -> Triangulation | None:
    """The convex-hull triangulation of unit directions ``(M, 3)``, gap facets marked (module
    docstring); ``None`` when the directions do not span 3-D (then every query is nearest)."""
    from scipy.spatial import ConvexHull, QhullError

    unit = np.asarray(unit, float)
    try:
        hull = ConvexHull(unit)
    except (QhullError, ValueError):
        return None
    simplices = hull.simplices.astype(np.int64)
    normals, heights = hull.equations[:, :3], -hull.equations[:, 3]
    verts = unit[simplices]  # (F, 3 vertices, 3 coordinates)
    radius = np.degrees(np.arccos(np.clip(heights, -1.0, 1.0)))
    front = heights > 1e-9  # a plane through (or behind) the origin cannot be where a ray leaves
    inverse = np.zeros_like(verts)
    inverse[front] = np.linalg.inv(np.transpose(verts[front], (0, 2, 1)))
    limit = gap_factor * float(np.median(radius[front])) if front.any() else 0.0
    usable = front & (radius <= limit)
    if (~usable).any():
        log.info("HRIR grid: %d of %d facets span holes (circumradius > %.1f°); nearest direction there",
                 int((~usable).sum()), len(simplices), limit)
    facets = np.flatnonzero(usable)
    vertex = simplices[facets].ravel()
    order = np.argsort(vertex, kind="stable")
    vertex, owner = vertex[order], np.repeat(facets, 3)[order]
    counts = np.bincount(vertex, minlength=len(unit))
    slot = np.arange(len(vertex)) - np.repeat(np.cumsum(counts) - counts, counts)
    vertex_facets = np.full((len(unit), max(int(counts.max(initial=0)), 1)), -1, np.int64)
    vertex_facets[vertex, slot] = owner
    return Triangulation(simplices, normals, heights, inverse, usable, radius, vertex_facets)


def _coordinates(inverse: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``λ = inverse @ q`` for ``inverse`` ``(n, ..., 3, 3)`` and ``q`` ``(n, 3)``, element by element."""
    q = q.reshape(q.shape[:1] + (1,) * (inverse.ndim - 3) + (1, 3))
    return inverse[..., 0] * q[..., 0] + inverse[..., 1] * q[..., 1] + inverse[..., 2] * q[..., 2]


def _exit_facets(tri: Triangulation, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the rays along ``q`` ``(n, 3)`` leave the hull: facet index and ``λ`` ``(n, 3)``
    (search over all facets; see the module docstring)."""
    reach = _dot_rows(q, tri.normals) / np.where(tri.heights > 1e-9, tri.heights, np.inf)[None, :]
    # facets in one plane (a co-circular quad of a regular grid, cut in two) reach equally far:
    # of the few farthest, the one that holds the ray
    k = min(4, reach.shape[1])
    top = np.argpartition(-reach, k - 1, axis=1)[:, :k]
    top_reach = np.take_along_axis(reach, top, 1)
    lam_top = _coordinates(tri.inverse[top], q)  # (n, k, 3)
    best = top_reach.max(axis=1, keepdims=True)
    score = np.where(top_reach >= best - 1e-9 * np.abs(best), lam_top.min(axis=2), -np.inf)
    pick = np.argmax(score, axis=1)
    rows = np.arange(len(q))
    facet, lam = top[rows, pick], lam_top[rows, pick]
    lam[top_reach[rows, pick] <= 0] = -1.0  # the ray misses the hull
    return facet, lam


def barycentric(tri: Triangulation | None, unit: np.ndarray, queries: np.ndarray,
                snap: float = 1e-9, tree=None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(n, 3)`` and weights ``(n, 3)`` serving each query direction ``(n, 3)``.

    Inside a usable facet: its vertices and barycentric weights (≥ 0, sum 1, below ``snap`` → 0),
    largest weight first. In a gap facet, where the ray misses the hull, or without a
    triangulation: the nearest measured direction with weight 1 (the other two entries repeat it
    with weight 0). The facets around the nearest measured direction are tried first; a query
    none of them holds is searched among all facets.
    """
    q = np.asarray(queries, float)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    nearest = nearest_index(unit, q, tree)
    idx = np.repeat(nearest[:, None], 3, axis=1)
    w = np.zeros((len(q), 3))
    w[:, 0] = 1.0
    if tri is None or not len(q):
        return idx, w
    cand = tri.vertex_facets[nearest]  # (n, D) usable facets around the nearest direction, -1 = none
    lam_c = _coordinates(tri.inverse[np.maximum(cand, 0)], q)  # (n, D, 3)
    score = np.where(cand >= 0, lam_c.min(axis=2) / np.abs(lam_c.sum(axis=2)).clip(1e-300), -np.inf)
    pick = np.argmax(score, axis=1)
    rows = np.arange(len(q))
    facet, lam = cand[rows, pick], lam_c[rows, pick]
    ok = score[rows, pick] >= -1e-9
    if not ok.all():
        far = np.flatnonzero(~ok)
        facet[far], lam[far] = _exit_facets(tri, q[far])
    total = lam.sum(axis=1)
    ok = tri.usable[facet] & np.all(lam >= -1e-9 * np.abs(total)[:, None], axis=1) & (total > 0)
    lam = np.clip(lam, 0.0, None)
    weights = lam / np.where(ok, lam.sum(axis=1), 1.0)[:, None]
    weights = np.where(weights < snap, 0.0, weights)
    weights /= np.where(ok, weights.sum(axis=1), 1.0)[:, None]
    order = np.argsort(-weights, axis=1, kind="stable")  # the largest weight first
    idx[ok] = np.take_along_axis(tri.simplices[facet], order, 1)[ok]
    w[ok] = np.take_along_axis(weights, order, 1)[ok]
    return idx, w


def onset_spread(tri: Triangulation | None, onsets: np.ndarray) -> float:
    """The largest onset difference (samples) between the vertices of a usable facet, per ear."""
    if tri is None or not tri.usable.any():
        return 0.0
    d = onsets[tri.simplices[tri.usable]]  # (F, 3, 2)
    return float((d.max(axis=1) - d.min(axis=1)).max())


def mix_linear(ir: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Σ w_i h_i`` ``(n, 2, taps)``: the plain barycentric mix."""
    return w[:, 0, None, None] * ir[idx[:, 0]] + w[:, 1, None, None] * ir[idx[:, 1]] + w[:, 2, None, None] * ir[idx[:, 2]]


def mix_aligned(spectra: np.ndarray, onsets: np.ndarray, idx: np.ndarray, w: np.ndarray, nfft: int,
                taps_out: int) -> np.ndarray:
    """Onset-aligned mix ``(n, 2, taps_out)``: per ear ``Σ w_i · shift(h_i, d − d_i)``, ``d = Σ w_i d_i``.

    ``spectra`` ``(M, 2, nfft//2 + 1)`` are the responses' ``rfft`` at ``nfft``; ``onsets``
    ``(M, 2)`` in samples. Each shift is a linear phase (band-limited fractional delay).
    """
    from scipy.fft import irfft

    d_i = onsets[idx]  # (n, 3, 2)
    d = np.einsum("nv,nve->ne", w, d_i)
    shift = d[:, None, :] - d_i  # (n, 3, 2) samples, later if positive
    k = np.arange(spectra.shape[-1])
    phase = np.exp(-2j * np.pi * shift[..., None] * k / nfft)  # (n, 3, 2, K)
    mixed = np.einsum("nv,nvek->nek", w, spectra[idx] * phase)
    return irfft(mixed, n=nfft, axis=-1)[..., :taps_out]


class DirectionInterpolator:
    """HRIRs at any direction from a measured set (module docstring); the precomputed state.

    Args:
        ir: ``(M, 2, taps)`` measured responses (left, right).
        unit: ``(M, 3)`` their unit directions (x forward, y left, z up).
        method: ``nearest``, ``linear`` or ``aligned``.
        config: thresholds (:class:`InterpolatorConfig`).
    """

    def __init__(self, ir: np.ndarray, unit: np.ndarray, method: str = "aligned",
                 config: InterpolatorConfig = InterpolatorConfig()) -> None:
        if method not in METHODS:
            raise ValueError(f"interpolation must be one of {', '.join(METHODS)}, not {method!r}")
        self.ir = np.asarray(ir, float)
        unit = np.asarray(unit, float)
        self.unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
        self.method = method
        self.config = config
        from scipy.spatial import cKDTree

        self.tree = cKDTree(self.unit)
        self.tri = None if method == "nearest" else triangulate(self.unit, config.gap_factor)
        if method != "nearest" and self.tri is None:
            log.warning("HRIR directions do not span the sphere (e.g. one plane only): nearest direction everywhere")
        self.pad = 0
        if method == "aligned":
            from scipy.fft import next_fast_len, rfft

            self.onsets = onset_delays(self.ir, config.onset_threshold_db, config.onset_upsample)
            self.pad = int(np.ceil(onset_spread(self.tri, self.onsets)))
            self.nfft = next_fast_len(self.ir.shape[-1] + 2 * self.pad + 2, real=True)
            self.spectra = rfft(self.ir, n=self.nfft, axis=-1)

    @property
    def taps(self) -> int:
        """Length of every returned response, samples (fixed for the set)."""
        return self.ir.shape[-1] + self.pad

    def weights(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices and weights ``(n, 3)`` for unit query directions ``(n, 3)`` (nearest: weight 1 on it)."""
        q = np.atleast_2d(np.asarray(queries, float))
        if self.method == "nearest":
            idx = np.repeat(nearest_index(self.unit, q / np.linalg.norm(q, axis=1, keepdims=True), self.tree)[:, None],
                            3, axis=1)
            w = np.zeros(idx.shape)
            w[:, 0] = 1.0
            return idx, w
        return barycentric(self.tri, self.unit, q, self.config.snap, self.tree)

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        """``(n, 2, taps)`` responses at unit query directions ``(n, 3)``."""
        idx, w = self.weights(queries)
        if self.method == "linear":
            return mix_linear(self.ir, idx, w)
        out = np.zeros((len(idx), 2, self.taps))
        out[:, :, : self.ir.shape[-1]] = self.ir[idx[:, 0]]  # nearest and measured directions: exact
        if self.method == "aligned":
            mixed = w[:, 0] < 1.0
            if mixed.any():
                out[mixed] = mix_aligned(self.spectra, self.onsets, idx[mixed], w[mixed], self.nfft, self.taps)
        return out
