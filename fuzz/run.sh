#!/usr/bin/env bash
# Instrumented fuzzing by hand: every target for SECONDS each (default 60), on the
# checked-in corpus, which grows with what libFuzzer finds. Needs g++ (libFuzzer is
# C++) and cargo-fuzz (installed here if missing); cargo-fuzz wants nightly features,
# which the stable toolchain allows with RUSTC_BOOTSTRAP=1.
#
#   fuzz/run.sh 600                   # ten minutes per target
#   fuzz/run.sh 60 eth_message        # one target
#   RUNS=10000000 fuzz/run.sh 0 enr   # ten million executions (SECONDS is ignored)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
command -v g++ >/dev/null || { echo "fuzz/run.sh: needs g++ (apt-get install g++)"; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for target in "${targets[@]}"; do
    echo "== $target (${seconds}s)"
    mkdir -p "corpus/$target"
    if [[ -n "${RUNS:-}" ]]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="$seconds"); fi
    cargo fuzz run "$target" "corpus/$target" -- "${limit[@]}" -print_final_stats=1 2>&1 \
        | grep -E '^(#[0-9]+.*DONE|stat::|==|SUMMARY|artifact_prefix)' || true
done
