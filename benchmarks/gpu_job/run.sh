#!/usr/bin/env bash
# The standing GPU training job's device call: trains the packed model for a time budget and
# returns its weights in pieces of at most 15 MiB (a returned file may be 16 MiB at most).
#
#   bash benchmarks/gpu_job/run.sh BUNDLE OUT MINUTES [DEVICE]
#
# BUNDLE: what benchmarks/gpu_job/pack.py wrote (job.json, data/, init.safetensors, whl/).
# OUT: the folder that comes back ($OUT on the device machine). DEVICE: cuda (default) or cpu
# (the dry run). PYTHON: the interpreter (default python3, the device machine's torch one).
# Writes OUT/weights.partNN, OUT/train.log, OUT/metrics.jsonl, OUT/config.json, OUT/job.json.
set -euo pipefail
bundle=$1 out=$2 minutes=$3 device=${4:-cuda}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
mkdir -p "$out"
start=$(date +%s)
if compgen -G "$bundle/whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ncodec-site \
    "$bundle"/whl/*.whl
  export PYTHONPATH=/tmp/ncodec-site:${PYTHONPATH:-}
fi
# The range coder's extension is built where it runs (a build from another machine does not travel).
"$py" -c "import torch, ncodec._coder" 2>/dev/null || "$py" setup.py -q build_ext --inplace >"$out/build.log" 2>&1
read -r task model args < <("$py" -c '
import json, shlex, sys
job = json.load(open(sys.argv[1]))
print(job["task"], job["model"], shlex.join(job["train_args"]))' "$bundle/job.json")
eval "extra=($args)"
echo "setup took $(( $(date +%s) - start )) s; training $model ($task) for $minutes min on $device" | tee "$out/train.log"
status=0
"$py" -m ncodec train "$task" --data "$bundle/data" --arch "$model" --init "$bundle/init.safetensors" \
  --steps 100000000 --max-minutes "$minutes" --device "$device" --out "$bundle/run" "${extra[@]}" \
  >"$bundle/train.raw" 2>&1 || status=$?
# Progress bars redraw with carriage returns: keep their last 200 lines.
tr '\r' '\n' <"$bundle/train.raw" | grep -v '^ *$' | tail -n 200 >>"$out/train.log" || true
[ "$status" -eq 0 ] || { echo "training failed ($status)" | tee -a "$out/train.log"; exit "$status"; }
split -b 15M -d "$bundle/run/weights.safetensors" "$out/weights.part"
cp "$bundle/run/metrics.jsonl" "$bundle/run/config.json" "$bundle/job.json" "$out/"
echo "done in $(( $(date +%s) - start )) s" | tee -a "$out/train.log"
