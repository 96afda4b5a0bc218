#!/usr/bin/env bash
# Trains the two shipped 16 kHz audio codecs side by side on one GPU (both are small: one H100
# runs them together), each for a time budget, and exports their weights.
#
#   benchmarks/train_audio_gpu.sh DATA OUT MINUTES PHASE [INIT]
#
# DATA: 16 kHz speech (the held-out files of benchmarks/audio_val.txt already removed; no --val
#       is passed because PESQ is not installed on the GPU machine: evaluate with `ncodec eval`).
# PHASE: "mel" (multi-scale mel + VQ losses only) or "gan" (adds the MPD + MS-STFT
#       discriminators and feature matching from the first step).
# INIT: a folder with speech-rvq-16k.safetensors and tokenizer-16k.safetensors to start from.
# Writes OUT/{speech-rvq-16k,tokenizer-16k}/ (checkpoint, metrics.jsonl, weights.safetensors).
set -euo pipefail
data=$1 out=$2 minutes=$3 phase=$4 init=${5:-}
case $phase in
  mel) extra=(--adversarial-start 100000000 --lr 5e-4 --warmup-steps 500) ;;
  gan) extra=(--adversarial-start 0 --lr 2e-4 --disc-lr 2e-4 --warmup-steps 100 --disc-channels ${DISC_CHANNELS:-32}) ;;
  *) echo "PHASE must be mel or gan" >&2; exit 2 ;;
esac
pids=()
archs=${ARCHS:-speech-rvq-16k tokenizer-16k}
for arch in $archs; do
  mkdir -p "$out/$arch"
  args=(--data "$data" --arch "$arch" --steps 1000000 --max-minutes "$minutes" --out "$out/$arch"
        --batch-size 32 --segment-seconds 1.0 --device cuda --num-workers ${WORKERS:-4} --log-every 100
        --val-every 0 --checkpoint-every 2000 --wave-weight ${WAVE_WEIGHT:-0} "${extra[@]}")
  [ -n "$init" ] && args+=(--init "$init/$arch.safetensors")
  OMP_NUM_THREADS=8 python3 -m ncodec train audio "${args[@]}" >"$out/$arch/log.txt" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
