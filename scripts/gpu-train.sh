#!/usr/bin/env bash
# Train the bundled models' candidate runs side by side on one CUDA GPU, each sized to the same
# wall-clock time (`python -m pdiff train --seconds`), and pack each checkpoint's weights and
# config.json into OUTDIR/NAME.tgz, the logs into OUTDIR/train-logs.tgz.
#
#     bash scripts/gpu-train.sh OUTDIR SECONDS
#
# The runs start from the bundled pair (assets/models; for round 3 of the model card, AR v7 and
# PD v6) and train on task v5: AR continued at a lower learning rate; PD continued with two
# stratified mask draws per sequence (round 2's winner) at two learning rates, and with the plain
# objective as the control; and PD adapted afresh from the AR model (the paper's recipe). The
# earlier rounds' tables are this file in commits 42a370d, 9ba9a6c and eb8769d. One process
# each: on a GPU the batch is built on the host in Python (about 2 ms a sequence), so the runs
# share the GPU and take a few host cores each. Uses the machine's python3 (PDIFF_PYTHON names
# another) and installs nothing. A run that outlives its time by a minute (PDIFF_TRAIN_GRACE
# seconds) is stopped; its last save (every 200 steps) is packed. PDIFF_TRAIN_ARGS adds options
# to every run (later options win: a smoke run here uses smaller batches).
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: bash scripts/gpu-train.sh OUTDIR SECONDS" >&2
  exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
TIME=$2
cd "$(dirname "$0")/.."
PY=${PDIFF_PYTHON:-python3}
RUNS=${PDIFF_RUNS:-runs/gpu}
GRACE=${PDIFF_TRAIN_GRACE:-60}  # seconds a run may outlive its time (start-up included)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$RUNS"

AR=assets/models/ar-notes PD=assets/models/pd-notes
declare -A RUN=(
  [ar]="--kind ar --init $AR --lr 3e-4 --seed 80"
  [pd]="--kind pd --init $PD --lr 3e-4 --seed 81"
  [pd-mc]="--kind pd --init $PD --lr 3e-4 --seed 81 --mask-copies 2 --stratified"
  [pd-mc-hi]="--kind pd --init $PD --lr 5e-4 --seed 81 --mask-copies 2 --stratified"
  [pd-from-ar]="--kind pd --init $AR --lr 1e-3 --seed 82"
)
COMMON="--batch-size 32 --warmup 30 --examples 50000 --threads 2 --save-every 200 --seconds $TIME ${PDIFF_TRAIN_ARGS:-}"

for name in "${!RUN[@]}"; do
  # shellcheck disable=SC2086  # the options are words
  timeout -k 10 $((TIME + GRACE)) "$PY" -m pdiff train ${RUN[$name]} $COMMON --out "$RUNS/$name" \
    > "$RUNS/$name.log" 2>&1 &
done
wait

status=0
for name in "${!RUN[@]}"; do
  if [ -f "$RUNS/$name/model.safetensors" ]; then
    tar czf "$OUT/$name.tgz" -C "$RUNS/$name" model.safetensors config.json
    echo "$name: $(grep -m1 -o '"steps_done": [0-9]*' "$RUNS/$name/config.json") ($OUT/$name.tgz)"
  else
    echo "$name: no checkpoint ($(tail -n 1 "$RUNS/$name.log"))"
    status=1
  fi
done
tar czf "$OUT/train-logs.tgz" -C "$RUNS" $(cd "$RUNS" && ls ./*.log)
exit $status
