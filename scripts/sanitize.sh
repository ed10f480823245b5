#!/usr/bin/env bash
# Build weitiao._C with AddressSanitizer + UndefinedBehaviorSanitizer (setup.py's
# WEITIAO_SANITIZE=1) into a scratch directory - the normal in-place build is left alone -
# and run the tests against that build.
#
#   scripts/sanitize.sh            the C-boundary tests, every kernel test and a training
#                                  run (about 10 minutes on 2 cores)
#   scripts/sanitize.sh --full     the whole test suite
#   scripts/sanitize.sh -- ARGS    pytest ARGS instead (e.g. -- tests/test_conv2d.py -x)
#
# Environment: PYTHON (default: python3 on PATH), WEITIAO_SANITIZE_DIR (scratch directory,
# default a new one under /tmp, kept for inspection).
#
# Why these settings (docs/reliability.md has the long version):
# - LD_PRELOAD=libasan: python itself is not built with ASan, and ASan must come first
#   (with libstdc++, for C++ extensions that throw).
# - detect_leaks=0: CPython, NumPy and OpenBLAS keep allocations until exit on purpose
#   (interned strings, type objects, thread pools), so LeakSanitizer's exit report would be
#   all noise; tests/test_leaks.py checks our own reference and memory leaks instead.
# - allocator_may_return_null=1: tests ask for absurd sizes on purpose and expect
#   MemoryError; by default ASan aborts on them.
# - halt_on_error: the first ASan or UBSan report fails the run.
# - PYTHONMALLOC=malloc: Python objects from malloc, so ASan sees overflows into them too.
# - WEITIAO_FUZZ_NO_RLIMIT=1: ASan reserves terabytes of address space, so the fuzz
#   worker's address-space limit would fail; max_allocation_size_mb bounds allocations.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
OUT=${WEITIAO_SANITIZE_DIR:-$(mktemp -d /tmp/weitiao-sanitize.XXXXXX)}
mode=default
pytest_args=()
if [[ ${1:-} == --full ]]; then
    mode=full
elif [[ ${1:-} == -- ]]; then
    mode=custom
    shift
    pytest_args=("$@")
fi

echo "sanitizer build in $OUT"
rm -rf "$OUT/pkg" "$OUT/build"
mkdir -p "$OUT/pkg"
cp -r python/weitiao "$OUT/pkg/"
find "$OUT/pkg" -name '_C*.so' -delete
find "$OUT/pkg" -name __pycache__ -prune -exec rm -rf {} +
WEITIAO_SANITIZE=1 "$PY" setup.py build_ext -b "$OUT/pkg" -t "$OUT/build" >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log"; exit 1; }
so=$(ls "$OUT"/pkg/weitiao/_C*.so)
if [[ $(nm -D "$so") != *__asan_init* ]]; then
    echo "error: $so is not instrumented" >&2
    exit 1
fi

LIBASAN=$(gcc -print-file-name=libasan.so)
# libstdc++ too: C++ extensions that throw (matplotlib's ft2font) need ASan's __cxa_throw
# interceptor, which finds the real function only if libstdc++ is loaded before ASan starts.
export LD_PRELOAD="$LIBASAN $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=4096:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:strict_init_order=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export PYTHONMALLOC=malloc
export WEITIAO_FUZZ_NO_RLIMIT=1
export PYTHONPATH="$OUT/pkg"

# The run must use the instrumented module, not python/weitiao.
"$PY" - <<EOF
import weitiao, weitiao._C as C
assert C.__file__ == "$so", (C.__file__, "$so")
print("testing", C.__file__)
EOF

case $mode in
    full)
        pytest_args=(tests) ;;
    default)
        pytest_args=(
            tests/test_fuzz_c_boundary.py tests/test_leaks.py tests/test_errors.py
            tests/test_conv2d.py tests/test_pool2d.py tests/test_batchnorm.py
            tests/test_activation.py tests/test_linear.py tests/test_loss.py
            tests/test_dropout.py tests/test_sgd.py tests/test_threads.py
            tests/test_nn_module.py tests/test_optim_sgd_groups.py
            "tests/test_finetune.py::test_resume_from_checkpoint_matches_an_uninterrupted_run"
            "tests/test_finetune.py::test_interrupt_stops_at_batch_boundary"
            tests/test_crash_safety.py
        ) ;;
esac

# Tests that need torch compare against it; torch is not instrumented and works under the
# preloaded runtime, only slower.
status=0
"$PY" -m pytest -q -p no:cacheprovider "${pytest_args[@]}" 2>&1 | tee "$OUT/pytest.log" || status=$?
if grep -q -E "ERROR: AddressSanitizer|runtime error:" "$OUT/pytest.log"; then
    echo "sanitizer report found: see $OUT/pytest.log" >&2
    status=1
fi
echo "sanitize.sh: exit status $status (logs in $OUT)"
exit $status
