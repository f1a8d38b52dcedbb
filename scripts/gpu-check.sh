#!/usr/bin/env bash
# The GPU check: one command, run once on a GPU machine, shows whether pdiff's CUDA path is right
# and how fast the 7B shape runs. It writes everything to OUTDIR and prints one line per part.
#
#     bash scripts/gpu-check.sh OUTDIR
#
# It uses the machine's own python3 (PDIFF_PYTHON names another) and installs nothing: it needs
# torch (a CUDA build), transformers, tokenizers, safetensors, accelerate, numpy and pytest, and
# names whatever is missing. gradio and plotly are not needed. On a machine without CUDA it runs
# what it can (the test selection, whose CUDA legs skip, and a CPU-shrunk smoke of the bench's
# shape path) and says that the GPU parts were skipped.
#
# Parts, each under its own time budget (`timeout`), so that a hang cannot eat the device time.
# The CUDA tests and the bench together get at most 7 minutes (120 + 300 s); with env and
# nvidia-smi the budgets add up to 500 s. Expected times on one H100 or H200 are below them
# (PDIFF_BUDGET_{ENV,SMI,TESTS,BENCH} override a budget):
#   env         budget  60 s, expect ~10 s: import torch and transformers, start CUDA, check imports.
#   nvidia-smi  budget  20 s, expect ~1 s.
#   gpu tests   budget 120 s, expect ~1 min: `pytest -m gpu tests/test_cuda.py`, the CUDA legs of
#               the device tests (about 37) on tiny models. Each CUDA load captures 9 CUDA graphs
#               (pdiff.graphs, well under a second for a tiny model); the largest shares are
#               pytest's start-up (~10 s), the 12 copy-count runs and the 12 graphs-vs-eager
#               pairs (every schedule, sparse and dense, 1 and 2 rounds).
#   bench 7b    budget 300 s, expect ~2 to 4 min: `python -m pdiff bench --shape dream-7b
#               --device cuda`. 15.2 GB of random bf16 weights are allocated and filled on the GPU,
#               and 9 width buckets are captured as CUDA graphs (a few seconds, timed in the
#               report). Each step is then timed three ways, one after the other: (a) the AR step
#               on graphs, by transformers' Qwen2 on the same weights (StaticCache and
#               torch.compile mode="reduce-overhead": its compile is the largest unknown, likely
#               30 s to 2 min on a fresh machine; PDIFF_BENCH_ARGS="--peer eager" or "--peer none"
#               makes it shorter), and eager; (b) the denoise step on graphs and eager; (c) the
#               engine end to end, forced plan vs AR, 4 runs of each on graphs, then eager
#               (~1,300 forwards each way; eager at 13 to 31 ms a forward, about 20 to 40 s).
#
# Files in OUTDIR: summary.txt (the lines printed), env.txt, nvidia-smi.txt, tests.txt and
# tests.xml (JUnit), bench.log, gpu.json and gpu.md (the bench report; on a machine without CUDA
# the CPU smoke writes cpu-smoke/ instead, which says nothing about a GPU). The exit status is 0
# when every part that ran passed, 1 otherwise.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash scripts/gpu-check.sh OUTDIR" >&2
  exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
PY=${PDIFF_PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" GRADIO_ANALYTICS_ENABLED=False \
  HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
: > "$OUT/summary.txt"
FAILED=0
B_ENV=${PDIFF_BUDGET_ENV:-60} B_SMI=${PDIFF_BUDGET_SMI:-20}
B_TESTS=${PDIFF_BUDGET_TESTS:-120} B_BENCH=${PDIFF_BUDGET_BENCH:-300}

say() {  # say PART STATUS DETAIL: one summary line, printed and kept
  printf '%-11s %-8s %s\n' "$1" "$2" "$3" | tee -a "$OUT/summary.txt"
  [ "$2" = failed ] && FAILED=1
  return 0
}

run_part() {  # run_part BUDGET LOG CMD...: the command under its budget; sets RC and SECS
  local budget=$1 log=$2 start=$SECONDS
  shift 2
  timeout -k 10 "$budget" "$@" > "$log" 2>&1
  RC=$?
  SECS=$((SECONDS - start))
}

why() {  # why LOG: the failure reason for a summary line
  if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    echo "timed out after ${SECS} s (see $(basename "$1"))"
  else
    echo "exit $RC after ${SECS} s: $(grep -v '^\s*$' "$1" | tail -n 1 | cut -c1-140) (see $(basename "$1"))"
  fi
}

# 1) env: versions, CUDA, and the imports the other parts need ---------------------------------
ENV_PY=$(cat <<'EOF'
import importlib, platform, sys
need = ["torch", "transformers", "tokenizers", "safetensors", "accelerate", "numpy", "pytest"]
missing = []
for name in need + ["gradio", "plotly"]:
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '?')}")
    except Exception as err:  # an absent module, or one that fails on import
        print(f"{name} MISSING ({type(err).__name__}: {err})")
        if name in need:
            missing.append(name)
print(f"python {platform.python_version()} ({sys.executable})")
line = f"python {platform.python_version()}"
if "torch" not in missing:
    import torch
    cuda = torch.cuda.is_available()
    print(f"torch.version.cuda {torch.version.cuda}")
    print(f"cuda_available {cuda}")
    line += f", torch {torch.__version__}"
    if cuda:
        props = torch.cuda.get_device_properties(0)
        print(f"device {props.name}, {props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s)")
        line += f", CUDA {torch.version.cuda} on {props.name}"
    else:
        line += ", no CUDA device"
if missing:
    print(f"SUMMARY missing {', '.join(missing)}; {line}")
    sys.exit(1)
print(f"SUMMARY {line}")
EOF
)
run_part "$B_ENV" "$OUT/env.txt" "$PY" -c "$ENV_PY"
ENV_LINE=$(grep '^SUMMARY ' "$OUT/env.txt" | sed 's/^SUMMARY //')
if [ "$RC" -eq 0 ]; then
  say env ok "$ENV_LINE (${SECS} s)"
else
  say env failed "${ENV_LINE:-$(why "$OUT/env.txt")}"
fi
ENV_OK=$RC
CUDA=no
grep -q '^cuda_available True' "$OUT/env.txt" && CUDA=yes

# 2) nvidia-smi ---------------------------------------------------------------------------------
if command -v nvidia-smi > /dev/null; then
  run_part "$B_SMI" "$OUT/nvidia-smi.txt" nvidia-smi
  if [ "$RC" -eq 0 ]; then
    say nvidia-smi ok "$(grep -m1 -o 'Driver Version: [0-9.]*' "$OUT/nvidia-smi.txt") (nvidia-smi.txt)"
  else
    say nvidia-smi failed "$(why "$OUT/nvidia-smi.txt")"
  fi
else
  echo "nvidia-smi is not on this machine" > "$OUT/nvidia-smi.txt"
  say nvidia-smi skipped "no nvidia-smi on this machine"
fi

# 3) the gpu-marked tests: the CUDA legs of tests/test_cuda.py ------------------------------------
if [ "$ENV_OK" -ne 0 ]; then
  say "gpu tests" skipped "the env part failed"
else
  run_part "$B_TESTS" "$OUT/tests.txt" "$PY" -m pytest -m gpu tests/test_cuda.py -q -rs \
    -p no:cacheprovider --junitxml="$OUT/tests.xml"
  RESULT=$(grep -E '^=* ?[0-9]+ (passed|failed|skipped|error)|no tests ran' "$OUT/tests.txt" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')
  if [ "$RC" -ne 0 ]; then
    say "gpu tests" failed "${RESULT:-$(why "$OUT/tests.txt")} (tests.txt)"
  elif [ "$CUDA" = yes ]; then
    say "gpu tests" ok "$RESULT (tests.txt)"
  else
    say "gpu tests" skipped "$RESULT: no CUDA device (tests.txt)"
  fi
fi

# 4) bench: the dream-7b shape with random bf16 weights -----------------------------------------
BENCH_PY=$(cat <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, b, c, floor = r["ar_step"], r["denoise_step"], r["end_to_end"], r["roofline"]["bytes_read_ms"]
peer = f"{a['peer']['median_ms']:.2f}" if a["peer"] else "not run"
met = sum(t["met"] is True for t in r["targets"])
print(f"AR step graphs/peer/eager {a['graphs']['median_ms']:.2f}/{peer}/{a['eager']['median_ms']:.2f} ms "
      f"(floor {floor:.2f} ms), denoise {b['graphs']['median_ms'] / a['graphs']['median_ms']:.2f} AR "
      f"steps, end to end {c['graphs']['speedup_forced_plan']:.2f}x AR on graphs; "
      f"{met}/{len(r['targets'])} targets met; capture {r['capture']['seconds']:.1f} s")
EOF
)
if [ "$ENV_OK" -ne 0 ]; then
  say "bench 7b" skipped "the env part failed"
elif [ "$CUDA" = yes ]; then
  # shellcheck disable=SC2086  # PDIFF_BENCH_ARGS is split into flags on purpose
  run_part "$B_BENCH" "$OUT/bench.log" "$PY" -m pdiff bench --shape dream-7b --device cuda --out "$OUT" \
    ${PDIFF_BENCH_ARGS:-}
  if [ "$RC" -eq 0 ] && [ -f "$OUT/gpu.json" ]; then
    say "bench 7b" ok "$("$PY" -c "$BENCH_PY" "$OUT/gpu.json") (${SECS} s; gpu.md)"
  else
    say "bench 7b" failed "$(why "$OUT/bench.log")"
  fi
else
  run_part "$B_BENCH" "$OUT/bench.log" "$PY" -m pdiff bench --shape dream-7b --device cpu \
    --out "$OUT/cpu-smoke" --iters 1 --context 64 --prefix 32 --span-len 4
  if [ "$RC" -eq 0 ] && [ -f "$OUT/cpu-smoke/gpu.json" ]; then
    say "bench 7b" skipped "no CUDA device; the CPU smoke of the shape path (tiny preset) ran in ${SECS} s (cpu-smoke/)"
  else
    say "bench 7b" failed "CPU smoke of the shape path: $(why "$OUT/bench.log")"
  fi
fi

if [ "$CUDA" = no ]; then
  say "GPU parts" skipped "no CUDA device on this machine: nothing here was measured on a GPU"
fi
exit "$FAILED"
