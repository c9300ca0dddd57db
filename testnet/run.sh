#!/usr/bin/env bash
# Starts N devmux nodes as processes on 127.0.0.1, prints their addresses, and stops
# them cleanly (SIGINT, then wait) on Ctrl-C, SIGTERM or when any node exits.
#
#   testnet/run.sh [N]            # N nodes (default 3), the stream stack
#   RLPX=1 testnet/run.sh 5       # five nodes on the RLPx server
#
# Node i (1-based) listens on TCP and UDP BASE_PORT+i-1 (default 30600…; discv4 on UDP
# BASE_PORT+1000+i-1) and serves
# the admin JSON-RPC on 127.0.0.1:RPC_PORT+i-1 (default 8600…). Node 1 is the
# bootnode with DEV_BLOCKS devnet blocks (default 100); the others know only its ENR.
# Data directories and logs live in a temporary directory, removed at exit
# (KEEP=1 keeps it). DEVMUX=path/to/devmux skips the cargo build.
set -euo pipefail

n=${1:-3}
base=${BASE_PORT:-30600}
rpc=${RPC_PORT:-8600}
blocks=${DEV_BLOCKS:-100}
if ! [[ $n =~ ^[0-9]+$ ]] || (( n < 1 || n > 100 )); then
    echo "usage: $0 [N]   (N nodes, 1..100)" >&2
    exit 2
fi
if (( base < 1024 || base + n > 65536 || rpc < 1024 || rpc + n > 65536 )); then
    echo "$0: BASE_PORT and RPC_PORT must leave room for $n ports below 65536" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
if [[ -z "${DEVMUX:-}" ]]; then
    cargo build --quiet -p devmux
    target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    DEVMUX="$target_dir/debug/devmux"
fi
[[ -x "$DEVMUX" ]] || { echo "$0: $DEVMUX is not an executable" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/devmux-testnet.XXXXXX")
pids=()

stop_all() {
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP:-}" ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    echo "stopped ${#pids[@]} node(s)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Waits until node $1's stdout has at least $2 lines; fails if it exits first.
wait_lines() {
    local i=$1 want=$2 pid=${pids[$(($1 - 1))]}
    for _ in $(seq 1 300); do
        if (( $(cat "$work/node$i.out" 2>/dev/null | wc -l) >= want )); then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "node$i exited; its log ($work/node$i.log):" >&2
            tail -n 20 "$work/node$i.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "node$i did not start within 30 s; see $work/node$i.log" >&2
    return 1
}

stack=(--use-p2p-server)
[[ -n "${RLPX:-}" ]] && stack=()
enr=
for i in $(seq 1 "$n"); do
    port=$((base + i - 1))
    args=(--dev --datadir "$work/node$i" --port "$port" --http "127.0.0.1:$((rpc + i - 1))"
          --discovery-lookup-secs 3 "${stack[@]}")
    if (( i == 1 )); then
        args+=(--dev-blocks "$blocks")
    else
        args+=(--bootnodes "$enr")
    fi
    "$DEVMUX" "${args[@]}" > "$work/node$i.out" 2> "$work/node$i.log" &
    pids+=($!)
    # Lines: address, ENR, rpc URL.
    wait_lines "$i" 3
    if (( i == 1 )); then
        enr=$(sed -n 's/^enr://p' "$work/node1.out" | head -n 1)
        enr="enr:$enr"
    fi
    printf 'node%-3s %s\n        %s\n' "$i" "$(sed -n 1p "$work/node$i.out")" "$(grep '^rpc ' "$work/node$i.out")"
done
echo "logs in $work; Ctrl-C stops all nodes"
# Returns when any node exits (or on a signal): the trap stops the rest.
wait -n "${pids[@]}" || true
echo "a node exited; stopping the others" >&2
