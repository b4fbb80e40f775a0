#!/usr/bin/env bash
# Every fuzz target in fuzz/ for a bounded number of inputs (default 10^5 each),
# two at a time, with the deterministic mutation runner (the same inputs on every
# machine; atheris is not needed). Prints each target's input count and time;
# fails on any finding (the input is left as crash-<sha1> in the working tree).
#
#   .ci/fuzz.sh                 RUNS=10000 SEED=7 .ci/fuzz.sh
set -euo pipefail
start=$SECONDS
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
runs=${RUNS:-100000}
seed=${SEED:-1}
logs=$(mktemp -d "${TMPDIR:-/tmp}/ice-fuzz.XXXXXX")
trap 'rm -rf "$logs"' EXIT
targets=(fuzz/fuzz_*.py)
# The two slowest first, so the pairs finish together.
printf '%s\n' fuzz/fuzz_turn_server.py fuzz/fuzz_agent.py "${targets[@]}" | awk '!seen[$0]++' \
    | xargs -P "${JOBS:-2}" -I{} sh -c '
        name=$(basename "$1" .py)
        if ICE_FUZZ_RANDOM=1 "$2" "$1" -runs="$3" -seed="$4" >"$5/$name.log" 2>&1; then
            tail -1 "$5/$name.log"
        else
            cat "$5/$name.log"; echo "$name FAILED"; exit 255
        fi' sh {} "$python" "$runs" "$seed" "$logs"
echo "-- fuzz.sh: ${#targets[@]} targets x $runs inputs in $((SECONDS - start)) s"
