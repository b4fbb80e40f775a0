#!/usr/bin/env bash
# The portable code paths, built and tested on Linux. ICE_PORTABLE=1 (see
# setup.py) builds what macOS / Windows / non-glibc systems run: SHA-1 and
# SHA-256 in portable C (no SHA-NI / ARMv8 instructions) and ice.aio._udpio's
# recvfrom/sendto loops instead of recvmmsg/sendmmsg. The build goes into a
# scratch copy of the working tree (tracked and untracked-but-not-ignored
# files, so uncommitted edits count); the checkout's own build is not touched.
#
#   .ci/portable.sh            PYTHON=python3.13 .ci/portable.sh
#
# Runs: tests/codec, tests/stun, tests/turn, the asyncio server / relay /
# batched-socket tests (tests/aio/test_udpio.py, test_stun_server.py,
# test_turn_server.py, test_turn_server_tcp.py) and the load generator's
# (tests/cli/test_load.py: its Python path, the only one there).
set -euo pipefail
start=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

source "$root/.ci/scratch.sh"
scratch_copy portable
echo "== portable build in $scratch"
# The scratch build must be what gets imported, even where an ice is installed.
export PYTHONPATH="$scratch"
if ! ICE_PORTABLE=1 "$python" setup.py build_ext --inplace -q -j 2 --force >build.log 2>&1; then
    cat build.log
    exit 1
fi
echo "-- built in $((SECONDS - start)) s"

"$python" - <<'EOF'
import os

import ice
import ice._codec as codec
import ice._crc as crc
import ice._load._pump as pump
import ice.aio._udpio as udpio

here = os.getcwd()
assert ice.__file__.startswith(here), f"ice imported from {ice.__file__}, not the scratch build"
assert codec.SHA_COMPILED == ("portable",), codec.SHA_COMPILED
assert codec.SHA_BACKEND == "portable", codec.SHA_BACKEND
assert crc.BACKEND == "table", f"the CRC-32 fold was built: {crc.BACKEND}"
assert udpio.HAVE_MMSG is False, "the recvmmsg branch of _udpio was built"
assert pump.HAVE_PUMP is False, "the epoll branch of the load generator's pump was built"
print(f"SHA_BACKEND={codec.SHA_BACKEND} CRC BACKEND={crc.BACKEND} HAVE_MMSG={udpio.HAVE_MMSG}")
EOF

# ICE_PORTABLE=1 tells tests/aio/test_udpio.py that no recvmmsg on Linux is expected
ICE_PORTABLE=1 "$python" -m pytest -q -p no:cacheprovider -x \
    tests/codec tests/stun tests/turn \
    tests/aio/test_udpio.py tests/aio/test_stun_server.py \
    tests/aio/test_turn_server.py tests/aio/test_turn_server_tcp.py tests/cli/test_load.py
echo "-- portable.sh took $((SECONDS - start)) s"
