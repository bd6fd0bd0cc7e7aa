#!/usr/bin/env bash
# One prepared run on a lent GPU machine (issue 13; DESIGN §4). Not run on CPU machines.
#
# Prepare first, here: bash training/gpu_prep.sh (wheels + real recordings under .cache/), then
#   run(command="bash training/gpu_run.sh", carry=[".cache/gpu-wheels", ".cache/gpu-audio"], timeout_s=600)
#
# On the GPU image (Python 3.12 + torch, no soundfile/sofar/av) it:
#   1. installs the carried wheels with --target and lays out the foleyspace package (training/ as
#      foleyspace.training, as pyproject's package-dir does) on PYTHONPATH — no pip install of the project;
#   2. times sampling of an 8 s clip first (the figure that matters most if the run is cut short): the
#      paper and small configs, 50-step and fast schedules (RTF);
#   3. builds a `small` fine-scheme dataset from the carried recordings and the KU100 SOFA file;
#   4. trains the `small` config on one GPU for $TRAIN_MINUTES (default 6) minutes (bf16 autocast);
#   5. runs `eval binaural` of the trained checkpoint (fast and standard schedules) on held-out examples;
# The device tool brings back at most 8 files from $OUT (16 MiB each), so $OUT holds 7: summary.txt
# (rewritten after every step, so a cut-short run still has one), gpu_run.log, rtf.txt, train.txt,
# eval_fast.json, eval_standard.json and details.tgz (env, dataset, eval tables, log.csv, samples/).
# The checkpoint (28 MB for `small`) stays on the machine. Exit status: 0 when every step worked,
# 1 when one failed (the others still ran where they could), 3 when the environment is unusable.
#
# Smoke test of this script on a CPU machine before spending device time (about 3 minutes):
#   DEVICE=cpu CONFIG=tiny RTF_CONFIGS=tiny TRAIN_MINUTES=0.5 EXAMPLES=24 EVAL_EXAMPLES=4 \
#     PYTHON=.venv/bin/python WHEELS=none OUT=/tmp/gpu_smoke bash training/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
TRAIN_MINUTES=${TRAIN_MINUTES:-6}
EXAMPLES=${EXAMPLES:-384}
DEVICE=${DEVICE:-cuda}            # cpu for the smoke test
CONFIG=${CONFIG:-small}           # the config trained and evaluated
RTF_CONFIGS=${RTF_CONFIGS:-paper,small}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-16}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.cache/gpu-wheels}  # none: the interpreter has the dependencies already
AUDIO=${AUDIO:-.cache/gpu-audio}   # real recordings (WAV) + ku100.sofa
WORK=$(mktemp -d)
REPORT="$WORK/report"          # what goes into details.tgz
mkdir -p "$OUT" "$REPORT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1
step() { echo "=== $(date +%T) $*"; }
RC=0  # the exit status: 1 when a step failed (the later ones still run where they can)
check() { local status=${PIPESTATUS[0]}; [ "$status" = 0 ] || { echo "!!! $1 failed (exit $status)"; RC=1; return 1; }; }
summarize() {
  { cat "$REPORT/env.txt"; tail -n 1 "$REPORT/dataset.txt"; cat "$OUT/train.txt" "$OUT/rtf.txt" "$REPORT"/eval_*.txt; } \
    > "$OUT/summary.txt" 2>/dev/null
  tar -czf "$OUT/details.tgz" -C "$REPORT" . 2>/dev/null
}

step "environment"
if [ "$WHEELS" != none ]; then
  "$PYTHON" -m pip install --quiet --no-deps --no-index --target "$WORK/site" "$WHEELS"/*.whl || { echo "wheel install failed"; exit 3; }
fi
[ -f "$AUDIO/ku100.sofa" ] || { echo "$AUDIO/ku100.sofa is missing: run bash training/gpu_prep.sh first and carry $AUDIO"; exit 3; }
mkdir -p "$WORK/pkg"
cp -r foleyspace "$WORK/pkg/foleyspace"
ln -s "$PWD/training" "$WORK/pkg/foleyspace/training"
ln -s "$PWD/server" "$WORK/pkg/foleyspace/server"
export PYTHONPATH="$WORK/pkg:$WORK/site:$PWD"
export PYTHONSAFEPATH=1  # else `python -c/-m/-` puts the working directory, whose foleyspace/ has no training/, first
export OMP_NUM_THREADS=4
# every module the steps import (tqdm, requests, packaging: in the GPU image; the rest carried)
( set -e
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi (device $DEVICE)"
  "$PYTHON" -c "import torch, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
  "$PYTHON" -c "import soundfile, sofar, av, tqdm, foleyspace.hrtf.sofa, foleyspace.training.dataset_build, foleyspace.training.train, foleyspace.training.eval_binaural; print('imports ok')"
  "$PYTHON" -c "import foleyspace; assert foleyspace.__file__.startswith('$WORK/pkg/'), foleyspace.__file__; print('package', foleyspace.__file__)"
) 2>&1 | tee "$REPORT/env.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { echo "the environment is not usable (above)"; summarize; exit 3; }
summarize

step "sampling RTF, 8 s clip"
MAX_STEPS=$(echo "$RTF_CONFIGS" | tr , '\n' | sed 's/$/=0/' | paste -sd, -)
"$PYTHON" benchmarks/bench_diffusion.py --device "$DEVICE" --threads 4 --configs "$RTF_CONFIGS" --max-steps "$MAX_STEPS" \
    2>&1 | tee "$OUT/rtf.txt"
check "RTF benchmark"
summarize

step "dataset ($CONFIG config, fine scheme, KU100)"
"$PYTHON" - "$AUDIO" "$WORK/data" "$EXAMPLES" "$CONFIG" <<'EOF' 2>&1 | tee "$REPORT/dataset.txt"; check "dataset" || { summarize; exit "$RC"; }
import sys, time
from foleyspace.diffusion.config import named_config
from foleyspace.training.dataset_build import BuildSettings, build_dataset
audio, out, examples, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.time()
m = build_dataset(audio, [("ku100", f"{audio}/ku100.sofa")], out, named_config(config),
                  BuildSettings(examples=examples, heldout=0.15, shard_size=64), workers=12, quiet=True)
print(f"built {m['counts']} in {time.time() - t0:.1f} s;", [(s["file"], s["split"], s["segments"]) for s in m["sources"]])
EOF
summarize

step "train $CONFIG for $TRAIN_MINUTES min on $DEVICE"
"$PYTHON" -m foleyspace.training.train --data "$WORK/data" --config "$CONFIG" --out "$WORK/run" --max-minutes "$TRAIN_MINUTES" \
    --save-every 2000 --sample-every 2000 --keep 1 --workers "$([ "$DEVICE" = cpu ] && echo 0 || echo 6)" --threads 4 \
    --device "$DEVICE" 2>&1 | grep -v "INFO sampling" | tail -n 20
check "training"
"$PYTHON" - "$WORK/run" "$CONFIG" <<'EOF' | tee "$OUT/train.txt"; check "training log"
import sys
import numpy as np
from foleyspace.diffusion.config import named_config
from foleyspace.training.train_log import read_log
rows = read_log(f"{sys.argv[1]}/log.csv"); cfg = named_config(sys.argv[2])
loss = np.array([r["loss"] for r in rows]); rate = np.array([r["samples_per_s"] for r in rows])
print(f"steps {len(rows)}; loss mean first 50 {loss[:50].mean():.4f}, last 50 {loss[-50:].mean():.4f}; "
      f"samples/s median {np.median(rate[10:] if len(rate) > 20 else rate):.1f} ({cfg.name}: batch {cfg.batch_size}, {cfg.segment_s:g} s at {cfg.sample_rate / 1000:g} kHz); "
      f"elapsed {rows[-1]['elapsed_s']:.0f} s")
EOF
mkdir -p "$REPORT/run" && cp -r "$WORK/run/log.csv" "$WORK/run/samples" "$REPORT/run/" 2>/dev/null
CKPT=$(ls "$WORK"/run/checkpoint-*.pt 2>/dev/null | tail -n 1)
[ -n "$CKPT" ] || { echo "!!! no checkpoint: nothing to evaluate"; RC=1; }
summarize

if [ -n "$CKPT" ]; then
  for schedule in fast standard; do
    step "eval binaural ($schedule)"
    "$PYTHON" - "$CKPT" "$WORK/data" "$schedule" "$OUT" "$EVAL_EXAMPLES" "$DEVICE" "$REPORT" <<'EOF'; check "eval binaural ($schedule)"
import json, sys
from foleyspace.training.eval_binaural import evaluate_binaural, format_binaural_table
ckpt, data, schedule, out, examples, device, report_dir = sys.argv[1:]
report = evaluate_binaural(ckpt, data, examples=int(examples), schedule=schedule, device=device)
open(f"{out}/eval_{schedule}.json", "w").write(json.dumps(report.to_json(), indent=1))
table = format_binaural_table(report)
open(f"{report_dir}/eval_{schedule}.txt", "w").write(table + "\n")
print(table)
EOF
    summarize
  done
fi

step "summary"
summarize
cat "$OUT/summary.txt"
rm -rf "$WORK"
exit "$RC"
