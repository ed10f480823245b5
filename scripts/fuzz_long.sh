#!/usr/bin/env bash
# The long reliability runs whose results docs/reliability.md records:
#   - the C-boundary fuzz with WEITIAO_FUZZ_CALLS calls (default 100000),
#   - the leak check with WEITIAO_LEAK_CALLS calls of each entry and path (default 10000),
#   - the SIGKILL-while-saving test with WEITIAO_CRASH_KILLS kills (default 500).
# Each writes its figures to $OUT (default reliability-long/ under /tmp).
#
#   scripts/fuzz_long.sh              all three
#   scripts/fuzz_long.sh fuzz|leaks|kills
#
# PYTHON selects the interpreter (default python3). Under scripts/sanitize.sh's environment
# (LD_PRELOAD=libasan, PYTHONPATH=<sanitizer build>) the same runs use the sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/reliability-long}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-python}
what=${1:-all}

run() {
    local name=$1
    shift
    local started=$SECONDS
    echo "== $name: $*"
    local status=0
    "$PY" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$OUT/$name.log" || status=$?
    echo "== $name: exit status $status in $((SECONDS - started)) s" | tee -a "$OUT/$name.log"
    return $status
}

status=0
if [[ $what == all || $what == fuzz ]]; then
    WEITIAO_FUZZ_CALLS=${WEITIAO_FUZZ_CALLS:-100000} WEITIAO_FUZZ_REPORT="$OUT/fuzz.json" \
        run fuzz tests/test_fuzz_c_boundary.py || status=1
fi
if [[ $what == all || $what == leaks ]]; then
    WEITIAO_LEAK_CALLS=${WEITIAO_LEAK_CALLS:-10000} WEITIAO_LEAK_REPORT="$OUT/leaks.json" \
        run leaks tests/test_leaks.py || status=1
fi
if [[ $what == all || $what == kills ]]; then
    WEITIAO_CRASH_KILLS=${WEITIAO_CRASH_KILLS:-500} \
        run kills tests/test_crash_safety.py -s -k sigkill_while_saving || status=1
fi
exit $status
