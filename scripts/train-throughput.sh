#!/usr/bin/env bash
# Training throughput on this machine, one process against two (accelerate, one per core), same
# global batch of 16, continuing from CHECKPOINT (default: the bundled PD model). It times 4- and
# 14-step runs of each and reports the seconds per step of the 10 steps in between. Run it on an
# otherwise idle machine:   bash scripts/train-throughput.sh [CHECKPOINT]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PDIFF_PYTHON:-.venv/bin/python}
ckpt=${1:-assets/models/pd-notes}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH="$PWD" OMP_NUM_THREADS=1
common=(--kind pd --init "$ckpt" --batch-size 16 --lr 1e-3 --warmup 2 --seed 11 --threads 1 --examples 2000)
for n in 4 14; do
  "$PY" -m pdiff train "${common[@]}" --steps "$n" --out "$tmp/one-$n" > /dev/null 2>&1
  "$PY" -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 \
    --mixed_precision no --dynamo_backend no -m pdiff train "${common[@]}" --steps "$n" \
    --out "$tmp/two-$n" > /dev/null 2>&1
done
"$PY" - "$tmp" <<'PY'
import json, sys
s = lambda name: json.load(open(f"{sys.argv[1]}/{name}/config.json"))["pdiff"]["seconds"]
one, two = (s("one-14") - s("one-4")) / 10, (s("two-14") - s("two-4")) / 10
print(f"seconds per step (10 steps, batch 16): 1 process {one:.2f}, 2 processes {two:.2f}; "
      f"2 processes are {one / two:.2f}x as fast")
PY
