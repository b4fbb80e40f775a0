#!/usr/bin/env bash
# aarch64 on an x86-64 Debian 12 machine: cross-compile the extensions against
# Debian's arm64 CPython 3.11 and run the codec (STUN/ChannelData, CRC-32,
# SHA-1/SHA-256/HMAC) and server-core tests under qemu-user, first on the ARMv8
# crypto-extension SHA path (qemu's default "max" CPU has SHA1/SHA2), then
# again with the portable SHA path pinned. Then the same SHA code built by
# clang (the compiler of macOS arm64 wheels), checked for the SHA instructions
# and run under qemu too.
#
#   .ci/aarch64.sh          (root: installs what is missing with apt-get, once)
#
# Installed on the host: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
# qemu-user-static, clang. The arm64 Python (python3.11-minimal,
# libpython3.11-stdlib, libpython3.11-dev and their libraries) is unpacked into
# a cache directory rather than installed: python3.11:arm64 cannot be
# installed beside the host's python3.11. pytest and hypothesis for it are
# pure-Python wheels put there with the host's pip. Cache: $ICE_AARCH64_CACHE,
# default ~/.cache/ice-aarch64. The build happens in a scratch copy of the
# working tree; the checkout's own build is not touched.
set -euo pipefail
start=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cache=${ICE_AARCH64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ice-aarch64}
sysroot=$cache/sysroot
pylib=$cache/pylib
export DEBIAN_FRONTEND=noninteractive

# Versions of the guest's test tools: the host's, so both runs see the same pytest.
PYTEST=9.0.3
HYPOTHESIS=6.155.2
IFADDR=0.2.0

# The arm64 packages the guest interpreter needs, as Debian 12 names them.
GUEST_DEBS=(
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
    libc6 libgcc-s1 libexpat1 zlib1g libssl3 libffi8 libbz2-1.0 liblzma5 libuuid1 libcrypt1
)

echo "== host tools"
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v clang >/dev/null || need+=(clang)
updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
    updated=1
fi
if [ ${#need[@]} -gt 0 ]; then
    [ $updated = 1 ] || apt-get update -qq
    updated=1
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -f "$sysroot/.done" ]; then
    echo "== arm64 Python 3.11 into $sysroot"
    [ $updated = 1 ] || apt-get update -qq
    rm -rf "$sysroot" "$cache/debs"
    mkdir -p "$sysroot" "$cache/debs"
    (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "${GUEST_DEBS[@]/%/:arm64}")
    for deb in "$cache/debs"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    rm -rf "$cache/debs"
    touch "$sysroot/.done"
fi
guest() {
    QEMU_LD_PREFIX=$sysroot PYTHONPATH=$pylib PYTHONDONTWRITEBYTECODE=1 \
        qemu-aarch64-static "$sysroot/usr/bin/python3.11" "$@"
}
if [ ! -f "$pylib/.done" ]; then
    echo "== pytest $PYTEST, hypothesis $HYPOTHESIS for the guest into $pylib"
    rm -rf "$pylib"
    PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check --target "$pylib" \
        --only-binary=:all: --platform manylinux2014_aarch64 --python-version 3.11 \
        --implementation cp "pytest==$PYTEST" "hypothesis==$HYPOTHESIS" "ifaddr==$IFADDR"
    touch "$pylib/.done"
fi
guest -c 'import platform, sys; assert platform.machine() == "aarch64", platform.machine(); print("guest:", sys.version.split()[0], platform.machine())'
echo "-- tools ready at $((SECONDS - start)) s"

source "$root/.ci/scratch.sh"
scratch_copy aarch64
echo "== cross build in $scratch"
# The host's setup.py run, with the cross compiler and the arm64 headers first
# on the include path; the host names the .so files for itself, so rename them.
inc=$sysroot/usr/include
if ! CC=aarch64-linux-gnu-gcc LDSHARED="aarch64-linux-gnu-gcc -shared" \
    "$python" setup.py build_ext --inplace -q -j 2 --force \
    -I "$inc/python3.11:$inc/aarch64-linux-gnu/python3.11:$inc" >build.log 2>&1; then
    cat build.log
    exit 1
fi
host_suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
find ice -name "*$host_suffix" | while read -r so; do
    mv "$so" "${so%"$host_suffix"}.cpython-311-aarch64-linux-gnu.so"
done
aarch64-linux-gnu-readelf -h ice/_codec.cpython-311-aarch64-linux-gnu.so | grep -q AArch64 \
    || { echo "ice._codec was not built for aarch64"; exit 1; }
echo "-- built at $((SECONDS - start)) s"

# A named subset: everything in tests/codec but test_properties.py (hypothesis
# fuzzing of the decoder, minutes under emulation) and test_no_leaks.py (memory
# growth over hundreds of thousands of calls), plus the STUN and TURN server
# cores and the compiled relay. About 75 s per run here.
TESTS=(
    tests/codec/test_constants.py tests/codec/test_crc.py tests/codec/test_malformed.py
    tests/codec/test_message.py tests/codec/test_rfc5769.py tests/codec/test_sha.py
    tests/stun/test_server.py tests/stun/test_binding.py tests/stun/test_auth.py
    tests/stun/test_transaction.py
    tests/turn/test_relay.py tests/turn/test_server.py
)
# Runs pytest in the guest with one SHA path pinned for the whole session
# (test_sha.py visits each path and puts the pinned one back).
run_tests() {
    guest - "$1" "${TESTS[@]}" <<'EOF'
import os
import platform
import sys

import ice
import ice._codec as codec
import ice.aio._udpio as udpio

want, tests = sys.argv[1], sys.argv[2:]
assert ice.__file__.startswith(os.getcwd()), ice.__file__
assert platform.machine() == "aarch64"
assert codec.SHA_COMPILED == ("arm-crypto", "portable"), codec.SHA_COMPILED
assert codec.SHA_BACKEND == "arm-crypto", f"default SHA path is {codec.SHA_BACKEND}"
assert udpio.HAVE_MMSG
import ice._crc as crc
assert crc.BACKEND == "table", crc.BACKEND  # the PCLMULQDQ fold is x86-64 only
codec._sha_use(want)
print(f"== tests on aarch64, SHA path {codec.SHA_BACKEND}")

import pytest

rc = pytest.main(["-q", "-p", "no:cacheprovider", "-x", *tests])
assert codec.SHA_BACKEND == want, "a test left another SHA path selected"
sys.exit(rc)
EOF
}
run_tests arm-crypto
echo "-- arm-crypto tests done at $((SECONDS - start)) s"
run_tests portable
echo "-- portable tests done at $((SECONDS - start)) s"

echo "== clang --target=aarch64-linux-gnu: the SHA path without -march=+crypto"
clang --target=aarch64-linux-gnu -O2 -Wall -Werror -c ice/_sha.c -Iice -o sha_clang.o
nm sha_clang.o | grep -q " t sha1_blocks_arm$" && nm sha_clang.o | grep -q " t sha256_blocks_arm$" \
    || { echo "clang left out the ARMv8 SHA functions"; exit 1; }
insns=$(aarch64-linux-gnu-objdump -d sha_clang.o | grep -cE $'\t(sha1c|sha1p|sha1m|sha1h|sha1su0|sha1su1|sha256h|sha256h2|sha256su0|sha256su1)\t')
echo "clang object: sha1_blocks_arm, sha256_blocks_arm, $insns SHA instructions"
[ "$insns" -ge 100 ] || { echo "expected the SHA instructions in clang's object"; exit 1; }
# ... and the clang-built ice._codec runs the SHA tests on both paths.
clang --target=aarch64-linux-gnu -O2 -fPIC -shared -fno-strict-aliasing -DNDEBUG \
    -Iice -I"$inc/python3.11" -I"$inc/aarch64-linux-gnu/python3.11" -I"$inc" \
    ice/_codec.c ice/_sha.c -o ice/_codec.cpython-311-aarch64-linux-gnu.so
aarch64-linux-gnu-readelf -p .comment ice/_codec.cpython-311-aarch64-linux-gnu.so | grep -q clang \
    || { echo "ice._codec is not the clang build"; exit 1; }
TESTS=(tests/codec/test_sha.py tests/codec/test_rfc5769.py)
run_tests arm-crypto
run_tests portable
echo "-- aarch64.sh took $((SECONDS - start)) s"
