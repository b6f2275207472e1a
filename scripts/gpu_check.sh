#!/usr/bin/env bash
# One prepared check for a machine with CUDA (no network needed), within 8 minutes:
#   1. a Python whose torch sees CUDA ($PYTHON, else .venv, python3.11, python3); this checkout on its path
#   2. the CUDA tests (tests/test_cuda.py, BEAR's CUDA test)
#   3. `awac-bench speed --device cuda --no-env` for every registered algorithm: float32, then --bf16 while the
#      budget lasts (each run in its own process with a timeout)
#   4. one JSON summary: $OUT/gpu_check.json (OUT defaults to ./gpu_check_out)
# Usage: scripts/gpu_check.sh            (BUDGET_S=480 SECONDS_PER_RUN=2 RUN_TIMEOUT_S=150 to change the limits;
#        DEVICE=cpu ALGOS=bc BUDGET_S=60 scripts/gpu_check.sh  is a dry run of the script itself on a CPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; BUDGET_S=${BUDGET_S:-480}; SECONDS_PER_RUN=${SECONDS_PER_RUN:-2}; RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-150}
START=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg

PY=""
for cand in "${PYTHON:-}" .venv/bin/python python3.11 python3; do
  [ -n "$cand" ] || continue
  if "$cand" -c "import torch, sys; sys.exit(0 if '$DEVICE' == 'cpu' or torch.cuda.is_available() else 1)" \
      2>/dev/null; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then
  echo '{"ok": false, "error": "no python with a CUDA-enabled torch (set PYTHON=...)"}' | tee "$OUT/gpu_check.json"
  exit 1
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
            torch.cuda.get_device_name(0) if '$DEVICE' == 'cuda' else 'cpu dry run')" | tee "$OUT/device.txt"

# 2. CUDA tests (pytest if present; their failures are recorded, the speed runs still happen)
TESTS_RC=-1
if "$PY" -c 'import pytest' 2>/dev/null; then
  t=$(( $(left) / 3 )); [ "$t" -ge 30 ] || t=30
  timeout "$t" "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_bear.py -k cuda \
    > "$OUT/tests.txt" 2>&1
  TESTS_RC=$?
  tail -3 "$OUT/tests.txt"
fi

# 3. speed runs, one JSON file each
ALGOS=${ALGOS:-$("$PY" -c 'import algorithms; print(" ".join(algorithms.names()))')}
MODES="eager bf16"
for mode in $MODES; do
  for algo in $ALGOS; do
    flag=""; [ "$mode" = eager ] || flag="--$mode"
    remaining=$(left)
    if [ "$remaining" -lt 30 ]; then echo "{\"skipped\": \"budget\"}" > "$OUT/speed-$algo-$mode.json"; continue; fi
    t=$(( remaining - 10 < RUN_TIMEOUT_S ? remaining - 10 : RUN_TIMEOUT_S ))
    timeout "$t" "$PY" -m benchmarks speed --algo "$algo" --device "$DEVICE" --no-env --seconds "$SECONDS_PER_RUN" \
      $flag --json > "$OUT/speed-$algo-$mode.json" 2> "$OUT/speed-$algo-$mode.err"
    rc=$?
    [ $rc -eq 0 ] || echo "{\"failed\": $rc}" > "$OUT/speed-$algo-$mode.json"
    echo "$algo $mode rc=$rc ($(left) s left)"
  done
done

# 4. the summary
"$PY" - "$OUT" "$TESTS_RC" "$(( $(date +%s) - START ))" <<'PYEOF'
import glob, json, os, sys
out, tests_rc, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
for path in sorted(glob.glob(os.path.join(out, "speed-*.json"))):
    key = os.path.basename(path)[len("speed-"):-len(".json")]
    try:
        r = json.load(open(path))
    except ValueError:
        r = {"failed": "unreadable output"}
    keep = ("updates_per_s", "gflop_per_update", "ceiling_updates_per_s", "efficiency", "batch", "failed", "skipped")
    runs[key] = {k: r[k] for k in keep if k in r}
summary = {"ok": tests_rc in (0, -1) and all("failed" not in r for r in runs.values()),
           "device": open(os.path.join(out, "device.txt")).read().strip(), "tests_rc": tests_rc, "wall_s": wall,
           "speed": runs}
json.dump(summary, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
PYEOF
