#!/usr/bin/env bash
# One prepared run on a lent GPU machine (issue 13; DESIGN §4). Not run on CPU machines.
#
# Prepare first, here: bash training/gpu_prep.sh (wheels + real recordings under .cache/), then
#   run(command="bash training/gpu_run.sh", carry=[".cache/gpu-wheels", ".cache/gpu-audio"], timeout_s=600)
#
# On the GPU image (Python 3.12 + torch, no soundfile/sofar/av) it:
#   1. installs the carried wheels with --target and lays out the foleyspace package (training/ as
#      foleyspace.training, as pyproject's package-dir does) on PYTHONPATH — no pip install of the project;
#   2. builds a `small` fine-scheme dataset from the carried recordings and the KU100 SOFA file;
#   3. trains the `small` config on one GPU for $TRAIN_MINUTES (default 7) minutes (bf16 autocast);
#   4. times sampling of an 8 s clip: the paper and small configs, 50-step and fast schedules (RTF);
#   5. runs `eval binaural` of the trained checkpoint (fast and standard schedules) on held-out examples;
# and writes everything under $OUT: env.txt, dataset.txt, run/ (log.csv, last checkpoint, samples/),
# train.txt (steps, samples/s), rtf.txt, eval_fast.json/.txt, eval_standard.json/.txt, summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
TRAIN_MINUTES=${TRAIN_MINUTES:-7}
EXAMPLES=${EXAMPLES:-384}
WHEELS=.cache/gpu-wheels
AUDIO=.cache/gpu-audio
WORK=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1
step() { echo "=== $(date +%T) $*"; }

step "environment"
python3 -m pip install --quiet --no-deps --no-index --target "$WORK/site" "$WHEELS"/*.whl || { echo "wheel install failed"; exit 3; }
mkdir -p "$WORK/pkg"
cp -r foleyspace "$WORK/pkg/foleyspace"
ln -s "$PWD/training" "$WORK/pkg/foleyspace/training"
ln -s "$PWD/server" "$WORK/pkg/foleyspace/server"
export PYTHONPATH="$WORK/pkg:$WORK/site:$PWD"
export OMP_NUM_THREADS=4
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"; python3 -c "import soundfile, sofar, av, foleyspace.training.train; print('imports ok')"; } | tee "$OUT/env.txt"

step "dataset (small config, fine scheme, KU100)"
python3 - "$AUDIO" "$WORK/data" "$EXAMPLES" <<'EOF' 2>&1 | tee "$OUT/dataset.txt"
import sys, time
from foleyspace.diffusion.config import named_config
from foleyspace.training.dataset_build import BuildSettings, build_dataset
audio, out, examples = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.time()
m = build_dataset(audio, [("ku100", f"{audio}/ku100.sofa")], out, named_config("small"),
                  BuildSettings(examples=examples, heldout=0.15, shard_size=64), workers=12, quiet=True)
print(f"built {m['counts']} in {time.time() - t0:.1f} s;", [(s["file"], s["split"], s["segments"]) for s in m["sources"]])
EOF

step "train small for $TRAIN_MINUTES min"
python3 -m foleyspace.training.train --data "$WORK/data" --config small --out "$WORK/run" --max-minutes "$TRAIN_MINUTES" \
    --save-every 2000 --sample-every 2000 --keep 1 --workers 6 --threads 4 2>&1 | grep -v "INFO sampling" | tail -n 20
python3 - "$WORK/run" <<'EOF' | tee "$OUT/train.txt"
import sys
import numpy as np
from foleyspace.training.train_log import read_log
rows = read_log(f"{sys.argv[1]}/log.csv")
loss = np.array([r["loss"] for r in rows]); rate = np.array([r["samples_per_s"] for r in rows])
print(f"steps {len(rows)}; loss mean first 50 {loss[:50].mean():.4f}, last 50 {loss[-50:].mean():.4f}; "
      f"samples/s median {np.median(rate[10:] if len(rate) > 20 else rate):.1f} (batch 16, 2 s at 16 kHz); "
      f"elapsed {rows[-1]['elapsed_s']:.0f} s")
EOF
mkdir -p "$OUT/run" && cp -r "$WORK/run/log.csv" "$WORK/run/samples" "$OUT/run/" 2>/dev/null
CKPT=$(ls "$WORK"/run/checkpoint-*.pt 2>/dev/null | tail -n 1)
[ -n "$CKPT" ] && cp "$CKPT" "$OUT/run/"

step "sampling RTF, 8 s clip"
python3 benchmarks/bench_diffusion.py --device cuda --threads 4 --configs paper,small --max-steps paper=0,small=0 \
    2>&1 | tee "$OUT/rtf.txt"

if [ -n "$CKPT" ]; then
  for schedule in fast standard; do
    step "eval binaural ($schedule)"
    python3 - "$CKPT" "$WORK/data" "$schedule" "$OUT" <<'EOF'
import json, sys
from foleyspace.training.eval_binaural import evaluate_binaural, format_binaural_table
ckpt, data, schedule, out = sys.argv[1:]
report = evaluate_binaural(ckpt, data, examples=16, schedule=schedule, device="cuda")
open(f"{out}/eval_{schedule}.json", "w").write(json.dumps(report.to_json(), indent=1))
table = format_binaural_table(report)
open(f"{out}/eval_{schedule}.txt", "w").write(table + "\n")
print(table)
EOF
  done
fi

step "summary"
{ cat "$OUT/env.txt"; tail -n 1 "$OUT/dataset.txt"; cat "$OUT/train.txt"; cat "$OUT/rtf.txt"; cat "$OUT"/eval_*.txt; } > "$OUT/summary.txt" 2>/dev/null
cat "$OUT/summary.txt"
rm -rf "$WORK"
