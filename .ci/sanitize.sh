#!/usr/bin/env bash
# The compiled modules under AddressSanitizer + UndefinedBehaviorSanitizer
# (ICE_SANITIZE=1, see setup.py), built in a scratch copy of the working tree
# (tracked and untracked-but-not-ignored files; the checkout's build is not
# touched), then the codec, server, relay, transaction, udpio and load-pump tests and a
# short pass of every fuzz target. Any report aborts the process: the script fails.
# LeakSanitizer is off (detect_leaks=0): CPython keeps its own allocations to
# exit on purpose, which LSan would report by the thousand.
#
#   .ci/sanitize.sh            RUNS=20000 .ci/sanitize.sh
set -euo pipefail
start=$SECONDS
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

source "$root/.ci/scratch.sh"
scratch_copy sanitize
echo "== sanitizer build in $scratch"
export PYTHONPATH="$scratch"
if ! ICE_SANITIZE=1 "$python" setup.py build_ext --inplace -j 2 --force >build.log 2>&1; then
    cat build.log
    exit 1
fi
grep -q -- "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
    build.log || { echo "the sanitizer flags are not on the compile line"; exit 1; }
echo "-- built in $((SECONDS - start)) s"

LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
export PYTHONMALLOC=malloc  # every allocation through ASan's malloc, not pymalloc's arenas

"$python" -m pytest -q -p no:cacheprovider -x \
    tests/codec tests/stun/test_server.py tests/stun/test_transaction.py tests/stun/test_auth.py \
    tests/turn/test_server.py tests/turn/test_relay.py tests/turn/test_server_tcp.py \
    tests/aio/test_udpio.py tests/aio/test_stun_server.py tests/aio/test_turn_server.py \
    tests/cli/test_load.py
echo "-- tests under ASan+UBSan done at $((SECONDS - start)) s"
RUNS=${RUNS:-5000} .ci/fuzz.sh
echo "-- sanitize.sh took $((SECONDS - start)) s"
