"""Eq. 1 and 3–7 and the coarse scheme (§III-E): pixels + depth → 3-D path around the listener.

Every expected value is computed by hand; the arithmetic is in the comments.
Conventions (DESIGN.md §2): x forward, y left, z up; screen right ⇒ negative azimuth.
"""

from __future__ import annotations

import numpy as np
import pytest

from foleyspace.config import TrajectoryConfig
from foleyspace.coords import to_cartesian, to_spherical
from foleyspace.trajectory import (
    box_centers,
    coarse_cells,
    interpolate_gaps,
    listener_coordinates,
    mapping_factor,
    normalize_depth,
    outlier_frames,
    per_second_median,
    quantize_depth,
    smooth_trajectory,
    source_path,
    step_lengths,
)

W, H = 640.0, 480.0
K = 1.47 / 320.0  # eq. 3 with W = 640, x_max = 1.47: k = 1.47 / (640/2) = 0.00459375 m/px


# --- coordinates (SOFA convention) -------------------------------------------------------------


def test_to_spherical_axes_follow_sofa():
    # x forward → az 0; y left → az +90; −y (right) → az −90; z up → el +90; r = Euclidean norm.
    sph = to_spherical(np.array([[2.0, 0, 0], [0, 1.0, 0], [0, -3.0, 0], [0, 0, 0.5], [3.0, 4.0, 0]]))
    np.testing.assert_allclose(sph[:, 0], [0, 90, -90, 0, np.degrees(np.arctan2(4, 3))], atol=1e-12)
    np.testing.assert_allclose(sph[:, 1], [0, 0, 0, 90, 0], atol=1e-12)
    np.testing.assert_allclose(sph[:, 2], [2, 1, 3, 0.5, 5], atol=1e-12)  # 3-4-5 triangle


def test_to_cartesian_hand_values_and_round_trip():
    # az 90, el 0, r 2 → (0, 2, 0); az 0, el 30, r 2 → (2·cos30, 0, 2·sin30) = (√3, 0, 1).
    xyz = to_cartesian([90.0, 0.0], [0.0, 30.0], [2.0, 2.0])
    np.testing.assert_allclose(xyz, [[0, 2, 0], [np.sqrt(3), 0, 1]], atol=1e-12)
    rng = np.random.default_rng(1)
    az, el, r = rng.uniform(-179, 179, 20), rng.uniform(-89, 89, 20), rng.uniform(0.5, 6, 20)
    back = to_spherical(to_cartesian(az, el, r))
    np.testing.assert_allclose(back, np.column_stack([az, el, r]), atol=1e-9)


# --- eq. 1, 3, 4 -------------------------------------------------------------------------------


def test_box_centers_eq1():
    # (x, y, w, h) = (10, 20, 30, 40) → (10 + 15, 20 + 20) = (25, 40); a NaN row stays NaN.
    c = box_centers(np.array([[10, 20, 30, 40], [np.nan] * 4, [0, 0, 640, 480]], float))
    np.testing.assert_allclose(c[0], [25, 40])
    assert np.isnan(c[1]).all()
    np.testing.assert_allclose(c[2], [320, 240])


def test_mapping_factor_eq3():
    assert mapping_factor(640, 1.47) == pytest.approx(0.00459375, rel=1e-12)  # 1.47 / 320
    assert mapping_factor(1920, 1.47) == pytest.approx(1.47 / 960, rel=1e-12)
    with pytest.raises(ValueError):
        mapping_factor(0, 1.47)


def test_listener_coordinates_eq4_hand_values():
    k = mapping_factor(W, 1.47)
    u = np.array([320.0, 640.0, 0.0, 320.0, 480.0])
    v = np.array([240.0, 240.0, 240.0, 0.0, 480.0])
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    s = listener_coordinates(u, v, d, W, H, k)
    expected = np.array(
        [
            [1.0, 0.0, 0.0],  # image center → straight ahead
            [2.0, -1.47, 0.0],  # right edge: y = −k·(640 − 320) = −1.47
            [3.0, 1.47, 0.0],  # left edge: y = −k·(0 − 320) = +1.47
            [4.0, 0.0, 1.1025],  # top: z = k·(240 − 0) = 240·0.00459375 = 1.1025
            [5.0, -0.735, -1.1025],  # y = −k·160 = −0.735, bottom: z = k·(240 − 480) = −1.1025
        ]
    )
    np.testing.assert_allclose(s, expected, atol=1e-12)


def test_screen_right_is_negative_azimuth():
    s = listener_coordinates(np.array([640.0, 0.0]), np.array([240.0, 240.0]), np.array([1.0, 1.0]), W, H, K)
    az = to_spherical(s)[:, 0]
    # right edge at d̂ = 1: az = atan2(−1.47, 1) = −55.7736°; left edge mirrors it.
    assert az[0] == pytest.approx(-55.7736, abs=1e-3)
    assert az[1] == pytest.approx(55.7736, abs=1e-3)


# --- eq. 5 -------------------------------------------------------------------------------------


def test_normalize_depth_min_max_eq5():
    # n = (d − 2)/(6 − 2) = [0, 0.5, 1]; d̂ = 1 + 5·n = [1, 3.5, 6]
    np.testing.assert_allclose(normalize_depth(np.array([2.0, 4.0, 6.0]), 1.0, 6.0), [1.0, 3.5, 6.0])


def test_normalize_depth_constant_and_nan():
    np.testing.assert_allclose(normalize_depth(np.full(4, 3.3), 1.0, 6.0), 1.0)  # constant → d_near
    np.testing.assert_allclose(normalize_depth(np.full(4, 3.3), 1.0, 6.0, 0.3), 1.0)
    np.testing.assert_allclose(normalize_depth(np.zeros(3), 1.0, 6.0), 1.0)
    # NaN stays NaN; min-max over the finite values only: n = (d − 2)/4 → [0, ., 0.25, 1]
    out = normalize_depth(np.array([2.0, np.nan, 3.0, 6.0]), 1.0, 6.0)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [1.0, 2.25, 6.0])
    assert np.isnan(normalize_depth(np.full(3, np.nan), 1.0, 6.0)).all()


def test_normalize_depth_min_relative_span():
    d = np.array([10.0, 10.5, 11.0])
    # without the option the 1 m jitter is stretched over 1…6 m: [1, 3.5, 6]
    np.testing.assert_allclose(normalize_depth(d, 1.0, 6.0, 0.0), [1.0, 3.5, 6.0])
    # span = max(11 − 10, 0.3·|11|) = 3.3 → n = [0, 0.5/3.3, 1/3.3] = [0, 0.151515…, 0.303030…]
    # d̂ = 1 + 5·n = [1, 1.757576, 2.515152]
    np.testing.assert_allclose(normalize_depth(d, 1.0, 6.0, 0.3), [1.0, 1.0 + 2.5 / 3.3, 1.0 + 5 / 3.3], rtol=1e-12)
    # when the real span is larger than the floor, the option changes nothing:
    # [2, 4, 6]: span = max(4, 0.3·6 = 1.8) = 4
    np.testing.assert_allclose(normalize_depth(np.array([2.0, 4.0, 6.0]), 1.0, 6.0, 0.3), [1.0, 3.5, 6.0])


# --- eq. 7 -------------------------------------------------------------------------------------


def _line(y: list[float]) -> np.ndarray:
    """A path along y only, at x = 1, z = 0, so Δ_t = |y_t − y_{t−1}|."""
    y = np.asarray(y, float)
    return np.column_stack([np.ones_like(y), y, np.zeros_like(y)])


def test_step_lengths_eq7():
    # (0,0,0) → (3,4,0): 5;  → (3,4,12): 12
    s = np.array([[0.0, 0, 0], [3, 4, 0], [3, 4, 12]])
    np.testing.assert_allclose(step_lengths(s), [5.0, 12.0])


def test_outlier_spike_dropped_with_neighbours_and_interpolated():
    s = _line([0, 1, 2, 3, 10, 5, 6, 7])
    # Δ = [1, 1, 1, 7, 5, 1, 1]  (Δ index i is the step into frame i+1)
    np.testing.assert_allclose(step_lengths(s), [1, 1, 1, 7, 5, 1, 1])
    # 95th percentile (linear): sorted [1,1,1,1,1,5,7], position 0.95·(7−1) = 5.7
    #   → 5 + 0.7·(7 − 5) = 6.4.  Only Δ = 7 (into frame 4) exceeds 6.4; Δ = 5 does not.
    assert np.percentile(step_lengths(s), 95) == pytest.approx(6.4)
    mask = outlier_frames(s)
    # frame 4 and its neighbours 3 and 5
    np.testing.assert_array_equal(np.nonzero(mask)[0], [3, 4, 5])
    # interpolation between frame 2 (y=2) and frame 6 (y=6): 3, 4, 5
    out = smooth_trajectory(s)
    np.testing.assert_allclose(out, _line([0, 1, 2, 3, 4, 5, 6, 7]), atol=1e-12)


def test_symmetric_spike_drops_both_steps_and_their_neighbours():
    # ramp y = t over 23 frames, frame 10 replaced by y = 30
    y = np.arange(23.0)
    y[10] = 30.0
    s = _line(list(y))
    # Δ: twenty 1s, Δ into 10 = |30 − 9| = 21, Δ into 11 = |11 − 30| = 19 (22 steps)
    # percentile position 0.95·21 = 19.95: sorted[19] = 1, sorted[20] = 19 → 1 + 0.95·18 = 18.1
    # both 21 and 19 exceed 18.1 → jumps into frames 10 and 11 → drop {9,10,11} ∪ {10,11,12}
    np.testing.assert_array_equal(np.nonzero(outlier_frames(s))[0], [9, 10, 11, 12])
    # interpolation between frame 8 (y=8) and frame 13 (y=13): 9, 10, 11, 12 — the ramp again
    np.testing.assert_allclose(smooth_trajectory(s), _line(list(np.arange(23.0))), atol=1e-12)


def test_outlier_at_start_holds_endpoint():
    s = _line([10, 1, 2, 3, 4, 5, 6, 7])
    # Δ = [9,1,1,1,1,1,1]; sorted position 5.7 → 1 + 0.7·(9 − 1) = 6.6; Δ = 9 into frame 1 exceeds
    # → drop frames 0, 1, 2; before the first kept frame (3, y=3) the value is held.
    np.testing.assert_array_equal(np.nonzero(outlier_frames(s))[0], [0, 1, 2])
    np.testing.assert_allclose(smooth_trajectory(s)[:, 1], [3, 3, 3, 3, 4, 5, 6, 7])


def test_constant_and_uniform_paths_drop_nothing():
    const = np.tile([2.0, -0.5, 0.3], (30, 1))  # Δ all 0; percentile 0; nothing is > 0
    assert not outlier_frames(const).any()
    np.testing.assert_array_equal(smooth_trajectory(const), const)
    uniform = _line(list(0.1 * np.arange(30)))  # Δ all 0.1 within rounding: a re-interpolated
    # frame of a straight line at constant speed lands on the line again
    np.testing.assert_allclose(smooth_trajectory(uniform), uniform, atol=1e-12)
    assert not outlier_frames(_line([0, 5])).any()  # under 3 frames: nothing to judge


# --- gaps (no detection) -----------------------------------------------------------------------


def test_interpolate_gaps_linear_and_held_ends():
    v = np.array([np.nan, 2.0, np.nan, np.nan, 8.0, np.nan])
    # inner gap between 2 (t=1) and 8 (t=4): 2 + 2·1 = 4, 2 + 2·2 = 6; ends held at 2 and 8
    np.testing.assert_allclose(interpolate_gaps(v, np.isnan(v)), [2, 2, 4, 6, 8, 8])
    two = np.column_stack([v, 10 * v])
    np.testing.assert_allclose(interpolate_gaps(two, np.isnan(v))[:, 1], [20, 20, 40, 60, 80, 80])
    # nothing valid: returned unchanged
    assert np.isnan(interpolate_gaps(np.full(3, np.nan), np.ones(3, bool))).all()


def test_source_path_fills_gaps_never_with_the_center():
    # the object moves along the top-right; frames 0, 3, 4, 7 have no detection
    u = np.array([np.nan, 500.0, 520.0, np.nan, np.nan, 580.0, 600.0, np.nan])
    v = np.full(8, 100.0)
    v[[0, 3, 4, 7]] = np.nan
    depth = np.full(8, 2.0)
    cfg = TrajectoryConfig()
    p = source_path(np.column_stack([u, v]), depth, np.ones(8), W, H, 25.0, cfg)
    # u: held 500 before; 520 → 580 over t=2..5: 540, 560; held 600 after
    np.testing.assert_allclose(p.u, [500, 500, 520, 540, 560, 580, 600, 600])
    np.testing.assert_allclose(p.v, 100.0)
    np.testing.assert_array_equal(p.detected, [False, True, True, False, False, True, True, False])
    # y = −k·(u − 320): at u = 540, −0.00459375·220 = −1.010625; z = k·(240 − 100) = 0.643125
    # (a straight line at constant speed except the held ends: no step exceeds the percentile)
    np.testing.assert_allclose(p.xyz[3], [1.0, -1.010625, 0.643125], atol=1e-9)
    assert (p.xyz[:, 1] < -0.8).all()  # never jumps back to the center (y = 0)
    np.testing.assert_allclose(p.times_s, np.arange(8) / 25.0)
    np.testing.assert_allclose(p.render_times_s, p.times_s)
    np.testing.assert_allclose(p.render_xyz, p.xyz)


def test_source_path_fine_depth_and_smoothing():
    # center of frame throughout; depth 2, 4, 6 → d̂ with the default floor 0.3·6 = 1.8 < 4: [1, 3.5, 6]
    c = np.tile([320.0, 240.0], (3, 1))
    p = source_path(c, np.array([2.0, 4.0, 6.0]), np.ones(3), W, H, 25.0, TrajectoryConfig())
    np.testing.assert_allclose(p.d_hat, [1.0, 3.5, 6.0])
    np.testing.assert_allclose(p.xyz, [[1, 0, 0], [3.5, 0, 0], [6, 0, 0]], atol=1e-12)
    # a missing depth is interpolated: [2, nan, 6] → [2, 4, 6]
    p = source_path(c, np.array([2.0, np.nan, 6.0]), np.ones(3), W, H, 25.0, TrajectoryConfig())
    np.testing.assert_allclose(p.d_hat, [1.0, 3.5, 6.0])


def test_source_path_without_any_detection_raises():
    with pytest.raises(ValueError):
        source_path(np.full((4, 2), np.nan), np.ones(4), np.zeros(4), W, H, 25.0, TrajectoryConfig())


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        TrajectoryConfig(scheme="medium")
    with pytest.raises(ValueError):
        TrajectoryConfig(d_near_m=3.0, d_far_m=2.0)


# --- §III-E coarse scheme ----------------------------------------------------------------------


def test_coarse_cells_5x3():
    # cells 128 × 160 px on 640 × 480; centers u ∈ {64, 192, 320, 448, 576}, v ∈ {80, 240, 400}
    u = np.array([10.0, 320.0, 640.0, 127.9, 128.0, np.nan])
    v = np.array([10.0, 240.0, 480.0, 159.9, 160.0, 5.0])
    uc, vc = coarse_cells(u, v, W, H)
    # (10,10) → col 0,row 0; (320,240) → col 2,row 1; edge (640,480) → clipped to col 4,row 2;
    # (127.9,159.9) still col 0,row 0; (128,160) → col 1,row 1
    np.testing.assert_allclose(uc[:5], [64, 320, 576, 64, 192])
    np.testing.assert_allclose(vc[:5], [80, 240, 400, 80, 240])
    assert np.isnan(uc[5])


def test_quantize_depth_five_levels():
    # levels 1, 2.25, 3.5, 4.75, 6 (step 5/4 = 1.25)
    # 1.6: n=0.12, ·4 = 0.48 → 0 → 1;  2.0: ·4 = 0.8 → 1 → 2.25;  3.0: 1.6 → 2 → 3.5;
    # 5.5: 3.6 → 4 → 6;  7 and 0: clipped → 6 and 1
    q = quantize_depth(np.array([1.6, 2.0, 3.0, 5.5, 7.0, 0.0]), 1.0, 6.0, 5)
    np.testing.assert_allclose(q, [1.0, 2.25, 3.5, 6.0, 6.0, 1.0])
    assert set(np.round(quantize_depth(np.linspace(1, 6, 101), 1.0, 6.0, 5), 9)) == {1.0, 2.25, 3.5, 4.75, 6.0}


def test_per_second_median():
    values = np.arange(55.0)
    # 25 fps: second 0 = frames 0..24 (median 12), 1 = 25..49 (37), 2 = 50..54 (partial, 52)
    np.testing.assert_allclose(per_second_median(values, 25.0), [12, 37, 52])
    values[:10] = np.nan  # NaN rows ignored: median of 10..24 = 17
    values[50:] = np.nan  # all-NaN second → NaN
    out = per_second_median(values, 25.0)
    np.testing.assert_allclose(out[:2], [17, 37])
    assert np.isnan(out[2])
    two = np.column_stack([np.arange(50.0), -np.arange(50.0)])
    np.testing.assert_allclose(per_second_median(two, 25.0), [[12, -12], [37, -37]])


def test_per_second_median_non_integer_fps():
    # 12.5 fps, 50 frames = 4 s. Frame t lies in second floor(t / 12.5):
    # s0: 0..12 (t/12.5 = 0..0.96) → median 6;  s1: 13..24 → 18.5;  s2: 25..37 → 31;  s3: 38..49 → 43.5
    np.testing.assert_allclose(per_second_median(np.arange(50.0), 12.5), [6, 18.5, 31, 43.5])


def test_source_path_coarse_one_position_per_second():
    # 60 frames at 25 fps = 2.4 s → 3 render positions (the last second is partial)
    u = np.r_[np.full(25, 50.0), np.full(25, 330.0), np.full(10, 600.0)]
    v = np.r_[np.full(25, 60.0), np.full(25, 250.0), np.full(10, 470.0)]
    depth = np.r_[np.full(25, 2.0), np.full(25, 4.0), np.full(10, 6.0)]
    cfg = TrajectoryConfig(scheme="coarse")
    p = source_path(np.column_stack([u, v]), depth, np.ones(60), W, H, 25.0, cfg)
    np.testing.assert_allclose(p.render_times_s, [0.0, 1.0, 2.0])
    # cells: (50,60) → (64,80); (330,250) → (320,240); (600,470) → (576,400)
    # d̂: span max(4, 0.3·6) = 4 → [1, 3.5, 6], already on the 5 levels
    # s0: y = −k(64 − 320) = 256·0.00459375 = 1.176, z = k(240 − 80) = 160k = 0.735
    # s2: y = −k(576 − 320) = −1.176,              z = k(240 − 400) = −0.735
    expected = np.array([[1.0, 1.176, 0.735], [3.5, 0.0, 0.0], [6.0, -1.176, -0.735]])
    np.testing.assert_allclose(p.render_xyz, expected, atol=1e-12)
    # per-frame xyz is the position of the frame's second
    np.testing.assert_allclose(p.xyz[:25], np.tile(expected[0], (25, 1)))
    np.testing.assert_allclose(p.xyz[25:50], np.tile(expected[1], (25, 1)))
    np.testing.assert_allclose(p.xyz[50:], np.tile(expected[2], (10, 1)))
    assert to_spherical(p.render_xyz)[0, 0] > 0 > to_spherical(p.render_xyz)[2, 0]  # left, then right


def test_source_path_coarse_uses_median_and_quantizes_depth():
    # 50 frames (2 s). Second 0: u = 100 for 20 frames, 600 for 5 (median 100 → col 0, u_c = 64);
    # depth of second 0: 20 frames 2.0 and 5 frames 9.0, second 1 all 3.0.
    u = np.r_[np.full(20, 100.0), np.full(5, 600.0), np.full(25, 450.0)]
    v = np.full(50, 240.0)
    depth = np.r_[np.full(20, 2.0), np.full(5, 9.0), np.full(25, 3.0)]
    p = source_path(np.column_stack([u, v]), depth, np.ones(50), W, H, 25.0, TrajectoryConfig(scheme="coarse"))
    # d̂ per frame: span max(9 − 2, 0.3·9) = 7: 2 → 1, 3 → 1 + 5/7 = 1.714, 9 → 6
    # medians: s0 → 1 (20 of 25 frames), s1 → 1.714; quantized: 1.714: n = 0.142857·4 = 0.571 → 1 → 2.25
    np.testing.assert_allclose(p.render_xyz[:, 0], [1.0, 2.25])
    # u medians 100 → 64 (col 0), 450 → 448 (col 3): y = −k(64 − 320) = 1.176, −k(448 − 320) = −0.588
    np.testing.assert_allclose(p.render_xyz[:, 1], [1.176, -0.588], atol=1e-12)
    np.testing.assert_allclose(p.render_xyz[:, 2], 0.0, atol=1e-12)
