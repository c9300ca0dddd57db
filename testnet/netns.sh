#!/usr/bin/env bash
# A multi-host devmux testnet: every node in a network namespace of its own, with its
# own address on one bridge, as distinct hosts on a LAN. Needs root and `ip netns`;
# where namespaces are unavailable it prints one line saying why and exits 0.
#
#   testnet/netns.sh [N]                      # N nodes (default 3) until Ctrl-C, like run.sh
#   testnet/netns.sh --check partition        # split 3/3, heal, every head the same
#   testnet/netns.sh --check crash            # kill -9 a syncing node 20 times
#   testnet/netns.sh --check churn [--minutes M]   # nodes leave and join (default 2 min)
#   testnet/netns.sh --check distinct         # per-IP and per-/24 limits, real addresses
#
# Layout (see testnet/README.md): namespace `dmxt-hub` holds bridge `dmxt-br0`
# (10.77.0.1/16) and, for the partition, `dmxt-br1`; node namespace `dmxt-nI` has
# `eth0` (the far end of veth `dmxt-vI`, a port of the bridge) at 10.77.S.H/16. Only
# 10.77.0.0/16 inside these namespaces is ever addressed; the host's interfaces and
# routes are never touched. Everything named `dmxt-` (namespaces, with the veths and
# bridges in them, and their processes) and the temporary directory go at exit,
# Ctrl-C or failure. DEVMUX=path and RELAY=path skip the cargo builds; RLPX=1 runs the
# RLPx server instead of the stream stack; KEEP=1 keeps the temporary directory.
set -euo pipefail

PREFIX=dmxt-
HUB=${PREFIX}hub
BR0=${PREFIX}br0
BR1=${PREFIX}br1
P2P_PORT=30303
RPC_PORT=8545
METRICS_PORT=9001

usage() {
    echo "usage: $0 [N] | --check partition|crash|churn|distinct [--minutes M]" >&2
    exit 2
}

check=
minutes=2
n=3
while (( $# )); do
    case $1 in
        --check) check=${2:-}; shift 2 || usage ;;
        --minutes) minutes=${2:-}; shift 2 || usage ;;
        -h|--help) usage ;;
        *) n=$1; shift ;;
    esac
done
case $check in ''|partition|crash|churn|distinct) ;; *) usage ;; esac
if ! [[ $n =~ ^[0-9]+$ ]] || (( n < 1 || n > 200 )); then usage; fi
if ! [[ $minutes =~ ^[0-9]+$ ]] || (( minutes < 1 )); then usage; fi

# --- Can we make namespaces here? One line and exit 0 if not. ---------------------
skip() { echo "netns: skipped: $*"; exit 0; }
(( EUID == 0 )) || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "no ip command (iproute2)"
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "netns: $tool is required (apt-get install $tool)" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
work=
pids=()

ours() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX" || true; }

# Kills every process in our namespaces (by pid, from `ip netns pids`) and deletes the
# namespaces; veths and bridges live in them and go with them.
remove_namespaces() {
    local ns pid
    for ns in $(ours); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    for ns in $(ours); do
        ip netns del "$ns" 2>/dev/null || true
    done
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    remove_namespaces
    if [[ -n $work && -d $work ]]; then
        if [[ -n ${KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
    fi
    exit "$code"
}

# A run still alive owns the namespaces: never clean under it.
for old in "${TMPDIR:-/tmp}/${PREFIX}"*; do
    [[ -f $old/owner ]] || continue
    owner=$(cat "$old/owner" 2>/dev/null || echo 0)
    if [[ $owner =~ ^[0-9]+$ ]] && (( owner != $$ )) && kill -0 "$owner" 2>/dev/null; then
        echo "netns: another run (pid $owner, $old) is using the ${PREFIX} namespaces; wait for it or stop it" >&2
        exit 1
    fi
done
# Leftovers of an earlier run: clean them, and refuse to start if that failed.
if [[ -n $(ours) ]]; then
    echo "netns: removing leftovers of an earlier run: $(ours | tr '\n' ' ')"
    remove_namespaces
fi
for old in "${TMPDIR:-/tmp}/${PREFIX}"*; do
    [[ -d $old ]] || continue
    owner=$(cat "$old/owner" 2>/dev/null || echo 0)
    kill -0 "$owner" 2>/dev/null || rm -rf "$old"
done
if [[ -n $(ours) ]]; then
    echo "netns: leftover namespaces could not be removed: $(ours | tr '\n' ' '); delete them (ip netns del NAME) and retry" >&2
    exit 1
fi

trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ip netns add "$HUB" 2>/dev/null; then
    skip "ip netns add failed (no network namespace support here)"
fi
if ! ip -n "$HUB" link add "$BR0" type bridge 2>/dev/null; then
    skip "cannot create a bridge inside a namespace"
fi
ip -n "$HUB" link add "$BR1" type bridge
ip -n "$HUB" addr add 10.77.0.1/16 dev "$BR0"
for link in lo "$BR0" "$BR1"; do ip -n "$HUB" link set "$link" up; done

work=$(mktemp -d "${TMPDIR:-/tmp}/${PREFIX}XXXXXX")
echo $$ > "$work/owner"

# netem delays and drops packets in the kernel; without it our relay does the same to
# TCP streams (tests/src/relay.rs).
netem=0
if ip netns exec "$HUB" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    ip netns exec "$HUB" tc qdisc del dev lo root 2>/dev/null || true
    netem=1
fi

# --- Binaries ------------------------------------------------------------------------
if [[ -z ${DEVMUX:-} || ( $check == churn && -z ${RELAY:-} ) ]]; then
    (cd "$ROOT" && cargo build --quiet -p devmux && cargo build --quiet -p devmux-tests --example netem_relay)
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    DEVMUX=${DEVMUX:-$target_dir/debug/devmux}
    RELAY=${RELAY:-$target_dir/debug/examples/netem_relay}
fi
[[ -x $DEVMUX ]] || { echo "netns: $DEVMUX is not an executable" >&2; exit 1; }

# --- Hosts and nodes -----------------------------------------------------------------
declare -A ip_of ns_of pid_of port_of

# host NAME IP: a namespace `dmxt-NAME` at IP/16 on the bridge.
host() {
    local name=$1 addr=$2 ns=${PREFIX}$1
    ip netns add "$ns"
    ip -n "$HUB" link add "${PREFIX}v$name" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "${PREFIX}v$name" master "$BR0" up
    ip -n "$ns" addr add "$addr/16" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

# node ID HOST [toml lines...]: writes node ID's config and starts it in HOST's
# namespace, on HOST's address (port offsets let several nodes share a host).
node_config() {
    local id=$1 hostname=$2 offset=${3:-0}; shift 3 || shift $#
    local addr=${ip_of[$hostname]}
    ns_of[$id]=${PREFIX}$hostname
    ip_of[$id]=$addr
    port_of[$id]=$((P2P_PORT + offset))
    local stack=true
    [[ -n ${RLPX:-} ]] && stack=false
    {
        echo "datadir = \"$work/$id\""
        echo "dev = true"
        echo "use-p2p-server = $stack"
        echo "addr = \"$addr\""
        echo "port = $((P2P_PORT + offset))"
        echo "discovery-port = $((P2P_PORT + offset))"
        echo "discv4-port = $((P2P_PORT + 1000 + offset))"
        echo "http = \"$addr:$((RPC_PORT + offset))\""
        echo "http-allow-remote-admin = true"
        echo "metrics = \"$addr:$((METRICS_PORT + offset))\""
        echo "discovery-lookup-secs = 3"
        echo "log-level = \"${LOG_LEVEL:-info}\""
        local line
        for line in "$@"; do echo "$line"; done
    } > "$work/$id.toml"
}

start() {
    local id=$1
    : > "$work/$id.out"
    ip netns exec "${ns_of[$id]}" "$DEVMUX" --config "$work/$id.toml" >> "$work/$id.out" 2>> "$work/$id.log" &
    pid_of[$id]=$!
    pids+=("$!")
}

# Waits until node ID has printed its address, ENR and rpc lines.
wait_up() {
    local id=$1
    for _ in $(seq 300); do
        grep -q '^rpc ' "$work/$id.out" 2>/dev/null && return 0
        if ! kill -0 "${pid_of[$id]}" 2>/dev/null; then
            echo "FAIL $id exited at start: $(tail -n 3 "$work/$id.log")" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "FAIL $id did not start within 30 s (log: $work/$id.log)" >&2
    return 1
}

addr_of() { sed -n 1p "$work/$1.out"; }
enr_of() { grep -m1 '^enr:' "$work/$1.out"; }

stop() {
    local id=$1 sig=${2:-INT} pid=${pid_of[$1]:-}
    [[ -n $pid ]] || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid_of[$1]=
}

# rpc ID METHOD [PARAMS-JSON]: the result, or empty on any failure.
rpc() {
    local id=$1 method=$2 params=${3:-[]} offset=$(( ${port_of[$1]} - P2P_PORT ))
    ip netns exec "${ns_of[$id]}" curl -s --max-time 5 -H 'content-type: application/json' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":$params}" \
        "http://${ip_of[$id]}:$((RPC_PORT + offset))" 2>/dev/null | jq -c '.result // empty' 2>/dev/null || true
}

# head ID: "NUMBER HASH" of its canonical head (decimal number).
head_of() {
    local block
    block=$(rpc "$1" eth_getBlockByNumber '["latest",false]')
    [[ -n $block ]] || { echo "- -"; return; }
    echo "$(( $(jq -r .number <<<"$block") )) $(jq -r .hash <<<"$block")"
}

# hash_at ID NUMBER
hash_at() {
    rpc "$1" eth_getBlockByNumber "[\"$(printf '0x%x' "$2")\",false]" | jq -r '.hash // "-"' 2>/dev/null || echo -
}

peer_count() { local c; c=$(rpc "$1" net_peerCount); [[ -n $c ]] && echo $(( $(jq -r . <<<"$c") )) || echo 0; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

fail() { echo "FAIL $*"; exit 1; }

# until_true SECS CMD...: polls CMD every 0.5 s; false if it never held.
until_true() {
    local deadline=$(( $(date +%s) + $1 )); shift
    while (( $(date +%s) < deadline )); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

# same_heads IDS...: every node has the first one's head, number and hash.
same_heads() {
    local first ref id
    first=$(head_of "$1")
    [[ $first == "- -" ]] && return 1
    for id in "$@"; do
        ref=$(head_of "$id")
        [[ $ref == "$first" ]] || return 1
    done
    return 0
}

heads_line() {
    local id out=
    for id in "$@"; do out+="$id:$(head_of "$id" | awk '{print $1}') "; done
    echo "$out"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# A "normal" network of nodes 1..COUNT on hosts spread over three /24s: node 1 is the
# bootnode (EXTRA1 lines go to its config), the rest know its ENR.
network() {
    local count=$1; shift
    local i
    for i in $(seq 1 "$count"); do
        host "n$i" "10.77.$(( (i - 1) % 3 + 1 )).$(( 10 + i ))"
        ip_of[n$i]=10.77.$(( (i - 1) % 3 + 1 )).$(( 10 + i ))
    done
    node_config node1 n1 0 "$@"
    start node1
    wait_up node1
    local enr
    enr=$(enr_of node1)
    # static_to_node1=1: the others also keep node 1 as a static peer (see the
    # partition scenario for why).
    local static=()
    [[ -n ${static_to_node1:-} ]] && static=("static-peers = [\"$(addr_of node1)\"]")
    for i in $(seq 2 "$count"); do
        node_config "node$i" "n$i" 0 "bootnodes = [\"$enr\"]" "${static[@]}"
        start "node$i"
    done
    for i in $(seq 2 "$count"); do wait_up "node$i"; done
}

ids() { local i; for i in $(seq 1 "$1"); do printf 'node%s ' "$i"; done; }

# --- Scenarios -------------------------------------------------------------------------

scenario_plain() {
    network "$n" "dev-blocks = ${DEV_BLOCKS:-100}"
    local i
    for i in $(seq 1 "$n"); do
        printf 'node%-3s %s\n        rpc http://%s:%s (ip netns exec %s …)\n' "$i" "$(addr_of "node$i")" \
            "${ip_of[node$i]}" "$RPC_PORT" "${ns_of[node$i]}"
    done
    echo "logs in $work; Ctrl-C stops all nodes"
    wait -n "${pids[@]}" || true
    echo "a node exited; stopping the others" >&2
}

# partition: 6 nodes, node 1 produces; nodes 4–6 move to a second bridge while node 1's
# side keeps making blocks; heal; every head the same, nothing stored lost.
scenario_partition() {
    local split_secs=${SPLIT_SECS:-20} heal_bound=${HEAL_BOUND:-60}
    # A split longer than the keepalive (ping every 15 s, 10 s to answer) ends the
    # connections across it, and then each side's discv5 table forgets the other
    # side: discovery alone does not heal it (bootnodes are contacted at start only).
    # So the nodes keep node 1 as a static peer, as an operator would keep a known
    # peer, and the dialer redials it after the heal.
    static_to_node1=1
    network 6 "dev-blocks = 50" "produce-blocks = 2"
    local all; all=$(ids 6)
    # shellcheck disable=SC2086
    until_true 60 same_heads $all || fail "connected: heads differ before the split: $(heads_line $all)"
    # shellcheck disable=SC2086
    echo "PASS connected  $(heads_line $all)"
    local i
    for i in 4 5 6; do ip -n "$HUB" link set "${PREFIX}vn$i" master "$BR1"; done
    local split_at; split_at=$(now)
    # What every node held at the split: its head and that block's hash.
    declare -A held
    for i in 1 2 3 4 5 6; do held[node$i]=$(head_of "node$i"); done
    sleep "$split_secs"
    local a b
    a=$(head_of node1 | awk '{print $1}')
    b=0
    for i in 4 5 6; do
        local h; h=$(head_of "node$i" | awk '{print $1}')
        (( h > b )) && b=$h
    done
    local before=${held[node1]%% *}
    (( a > before )) || fail "split: the producer's side made no blocks ($before -> $a)"
    (( b <= before + 1 )) || fail "split: the cut-off side still got blocks ($before -> $b): not isolated"
    echo "PASS split      ${split_secs}s apart: producer's side $before -> $a, other side stays at ≤ $b"
    for i in 4 5 6; do ip -n "$HUB" link set "${PREFIX}vn$i" master "$BR0"; done
    local healed_at; healed_at=$(now)
    # shellcheck disable=SC2086
    until_true "$heal_bound" same_heads $all \
        || fail "heal: heads differ ${heal_bound}s after the heal: $(heads_line $all)"
    local heal; heal=$(since "$healed_at")
    local lost=0
    for i in 1 2 3 4 5 6; do
        local num=${held[node$i]%% *} hash=${held[node$i]#* }
        [[ $(hash_at "node$i" "$num") == "$hash" ]] || { lost=$((lost + 1)); echo "node$i lost block $num $hash"; }
    done
    (( lost == 0 )) || fail "kept: $lost nodes lost a block they held at the split"
    echo "PASS healed     all 6 at $(head_of node1) ${heal}s after the heal (bound ${heal_bound}s); partition lasted $(since "$split_at")s"
    echo "PASS kept       every node still has the block it held at the split as canonical"
    echo "partition: time to heal ${heal}s"
}

# crash: node "victim" syncs a long chain from "source" and is killed (SIGKILL) 20
# times at random points; after each kill the store must check whole, keep every
# block it had reported, its ban and its known peers.
scenario_crash() {
    local kills=${KILLS:-20} blocks=${CRASH_BLOCKS:-30000}
    host src 10.77.1.10; ip_of[src]=10.77.1.10
    host vic 10.77.2.10; ip_of[vic]=10.77.2.10
    host bad 10.77.3.66; ip_of[bad]=10.77.3.66
    # Phase 1: a source without its chain yet, so the victim learns it (discovery)
    # and is banned against without syncing anything.
    node_config source src 0
    start source; wait_up source
    local enr; enr=$(enr_of source)
    node_config victim vic 0 "bootnodes = [\"$enr\"]" "max-peers-per-ip = 50"
    start victim; wait_up victim
    until_true 30 test "$(peer_count victim)" -ge 1 || fail "setup: the victim never met the source"
    # A real ban: a host whose handshakes are garbage, more than the fault limit (10).
    local k
    for k in $(seq 14); do
        ip netns exec "${PREFIX}bad" bash -c \
            "exec 3<>/dev/tcp/10.77.2.10/$P2P_PORT && head -c 600 /dev/urandom >&3 && sleep 0.3" 2>/dev/null || true
    done
    grep -q "address banned" "$work/victim.log" || fail "setup: no ban after 14 garbage handshakes from 10.77.3.66"
    sleep 1
    stop victim INT
    stop source INT
    local report
    report=$("$DEVMUX" db check --config "$work/victim.toml") || fail "setup: $report"
    [[ $report == *" address_bans=1 "* && $report != *"known_peers=0"* ]] \
        || fail "setup: expected a ban and a known peer: $report"
    echo "PASS setup      $report"
    # Phase 2: the source's chain, and the crashes.
    # It keeps producing (a block a second): a kill after the sync lands mid-import too.
    sed -i 's/^dev = true$/dev = true\ndev-blocks = '"$blocks"'\nproduce-blocks = 1/' "$work/source.toml"
    local started; started=$(now)
    start source; wait_up source
    echo "      source built $blocks blocks in $(since "$started")s"
    echo "static-peers = [\"$(addr_of source)\"]" >> "$work/victim.toml"
    local lost=0 mid=0 last=0 lasthash='' survived=0
    for k in $(seq 1 "$kills"); do
        start victim
        # 0.3–2.5 s after the start: during store open, mid-sync, or after.
        sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + 2.2 * r / 32767 }')"
        local seen; seen=$(head_of victim)
        local syncing; syncing=$(rpc victim eth_syncing)
        kill -KILL "${pid_of[victim]}"; wait "${pid_of[victim]}" 2>/dev/null || true
        pid_of[victim]=
        if [[ $seen != "- -" ]]; then
            last=${seen%% *}; lasthash=${seen#* }
        fi
        (( last < blocks )) && mid=$((mid + 1))
        report=$("$DEVMUX" db check --config "$work/victim.toml" 2>&1) \
            || fail "kill $k: the store does not check: $report"
        local head=${report#*head=}; head=${head%% *}
        [[ $report == *" address_bans=1 "* ]] || fail "kill $k: the ban is gone: $report"
        [[ $report != *"known_peers=0"* ]] || fail "kill $k: the known peers are gone: $report"
        if (( head < last )); then
            lost=$((lost + last - head))
            fail "kill $k: head $head after the crash, $last reported before it"
        fi
        survived=$k
        printf '      kill %2s  seen %-6s syncing=%-5s store head %s\n' "$k" "$last" \
            "$([[ $syncing == false || -z $syncing ]] && echo no || echo yes)" "$head"
    done
    # The last start: it finishes the sync and still has the blocks it reported.
    start victim; wait_up victim
    until_true 120 same_heads victim source || fail "final: the victim never caught up: $(heads_line victim source)"
    [[ -z $lasthash || $(hash_at victim "$last") == "$lasthash" ]] || fail "final: block $last changed"
    (( mid >= 3 )) || fail "crash: only $mid of $kills kills came before the sync finished"
    echo "PASS crash      $survived restarts survived, $mid of them before the sync finished; every store whole; blocks lost = $lost"
    echo "crash: restarts survived $survived, blocks lost $lost"
}

# churn: nodes 1–3 stay (node 1 produces), nodes 4–8 leave and join every few
# seconds; links 2→1 and 3→1 are slowed (netem, or our relay). RSS and fds of the
# stayers must stay bounded, and at the end every live node has node 1's head.
scenario_churn() {
    local settle=${SETTLE_SECS:-60}
    network 1 "dev-blocks = 20" "produce-blocks = 2"
    local enr; enr=$(enr_of node1)
    local i
    for i in $(seq 2 8); do
        host "n$i" "10.77.$(( (i - 1) % 3 + 1 )).$(( 10 + i ))"
        ip_of[n$i]=10.77.$(( (i - 1) % 3 + 1 )).$(( 10 + i ))
    done
    local impairment
    if (( netem )); then
        for i in 2 3; do
            ip netns exec "${PREFIX}n$i" tc qdisc add dev eth0 root netem delay 40ms 20ms loss 2%
        done
        impairment="netem: 40±20 ms, 2% loss on nodes 2 and 3"
        for i in 2 3; do node_config "node$i" "n$i" 0 "bootnodes = [\"$enr\"]"; done
    else
        # The node's static peer is node 1's key at the relay's address.
        local node1_addr relay_port=40001
        node1_addr=$(addr_of node1)
        for i in 2 3; do
            ip netns exec "$HUB" "$RELAY" --listen "10.77.0.1:$((relay_port + i))" \
                --target "${ip_of[node1]}:$P2P_PORT" --delay-ms 40 --jitter-ms 20 \
                --stall-percent 2 --stall-ms 300 > "$work/relay$i.out" 2>&1 &
            pids+=("$!")
            local via=${node1_addr//${ip_of[node1]}/10.77.0.1}
            via=${via//\/tcp\/$P2P_PORT\//\/tcp\/$((relay_port + i))\/}
            via=${via//:$P2P_PORT/:$((relay_port + i))}
            node_config "node$i" "n$i" 0 "static-peers = [\"$via\"]" "bootnodes = [\"$enr\"]"
        done
        impairment="netem unavailable on this kernel: nodes 2 and 3 reach node 1 through tests/examples/netem_relay (40±20 ms each way, 2% of chunks stalled 300 ms)"
    fi
    echo "      $impairment"
    start node2; start node3; wait_up node2; wait_up node3
    for i in $(seq 4 8); do node_config "node$i" "n$i" 0 "bootnodes = [\"$enr\"]"; done
    until_true 60 same_heads node1 node2 node3 || fail "start: $(heads_line node1 node2 node3)"
    sleep 10
    declare -A rss0 fd0
    for i in 1 2 3; do rss0[$i]=$(rss_kib "${pid_of[node$i]}"); fd0[$i]=$(fds "${pid_of[node$i]}"); done
    local end=$(( $(date +%s) + minutes * 60 )) joins=0 leaves=0 kills=0
    while (( $(date +%s) < end )); do
        local c=$(( RANDOM % 5 + 4 ))
        if [[ -n ${pid_of[node$c]:-} ]]; then
            if (( RANDOM % 2 )); then stop "node$c" INT; else stop "node$c" KILL; kills=$((kills + 1)); fi
            leaves=$((leaves + 1))
        else
            start "node$c"; joins=$((joins + 1))
        fi
        sleep $(( RANDOM % 4 + 2 ))
    done
    local live="node1 node2 node3"
    for i in $(seq 4 8); do [[ -n ${pid_of[node$i]:-} ]] && live+=" node$i"; done
    local produced; produced=$(head_of node1 | awk '{print $1}')
    # Every live node has node 1's head within the settle bound (node 1 keeps producing:
    # they must agree at one moment).
    # shellcheck disable=SC2086
    until_true "$settle" same_heads $live || fail "settle: heads differ ${settle}s after the churn: $(heads_line $live)"
    declare -A rss1 fd1
    local line='' bad=''
    for i in 1 2 3; do
        rss1[$i]=$(rss_kib "${pid_of[node$i]}"); fd1[$i]=$(fds "${pid_of[node$i]}")
        line+="node$i RSS $(( rss0[$i] / 1024 ))→$(( rss1[$i] / 1024 )) MiB fds ${fd0[$i]}→${fd1[$i]}; "
        # The bound: RSS at most doubles plus 64 MiB, fds grow by at most 64.
        (( rss1[$i] <= 2 * rss0[$i] + 65536 )) || bad+=" node$i RSS"
        (( fd1[$i] <= fd0[$i] + 64 )) || bad+=" node$i fds"
    done
    [[ -z $bad ]] || fail "bounded: grew beyond the bound (RSS ≤ 2×start + 64 MiB, fds ≤ start + 64):$bad — $line"
    echo "PASS churn      ${minutes} min, $joins joins, $leaves leaves ($kills by SIGKILL); every live node ($live) at node 1's head (≥ $produced) within ${settle}s"
    echo "PASS bounded    $line(bound: RSS ≤ 2×start + 64 MiB, fds ≤ start + 64)"
    echo "churn: $line"
}

# count_from ID PATTERN: peers of ID whose remote address matches PATTERN (a regex on
# "IP:PORT").
count_from() {
    rpc "$1" admin_peers | jq -r '.[].remoteAddress' 2>/dev/null | grep -c -E "$2" || true
}

metric() {
    ip netns exec "${ns_of[$1]}" curl -s --max-time 5 "http://${ip_of[$1]}:$METRICS_PORT/metrics" \
        | awk -v m="$2" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'
}

# distinct: the victim at 10.77.1.10 with small caps; dialers from one /24, one IP with
# several nodes, another /24; then silent sockets against the pending caps.
scenario_distinct() {
    local per_ip=2 per_subnet=3 pend_ip=2 pend_subnet=3
    host v 10.77.1.10; ip_of[v]=10.77.1.10
    node_config victim v 0 "no-discovery = true" "max-peers-per-ip = $per_ip" \
        "max-peers-per-subnet = $per_subnet" "max-pending-per-ip = $pend_ip" \
        "max-pending-per-subnet = $pend_subnet" "first-byte-timeout-secs = 30"
    start victim; wait_up victim
    local target; target=$(addr_of victim)
    local i
    # Five hosts of 10.77.2.0/24, one node each.
    for i in 1 2 3 4 5; do
        host "s$i" "10.77.2.$((10 + i))"; ip_of[s$i]=10.77.2.$((10 + i))
        node_config "sub$i" "s$i" 0 "no-discovery = true" "static-peers = [\"$target\"]"
    done
    # One host of 10.77.3.0/24 with four nodes on four ports.
    host m 10.77.3.20; ip_of[m]=10.77.3.20
    for i in 1 2 3 4; do
        node_config "ip$i" m "$i" "no-discovery = true" "static-peers = [\"$target\"]"
    done
    # And one of 10.77.4.0/24: must get in while the others are at their caps.
    host o 10.77.4.30; ip_of[o]=10.77.4.30
    node_config other o 0 "no-discovery = true" "static-peers = [\"$target\"]"
    for i in sub1 sub2 sub3 sub4 sub5 ip1 ip2 ip3 ip4 other; do start "$i"; done
    for i in sub1 sub2 sub3 sub4 sub5 ip1 ip2 ip3 ip4 other; do wait_up "$i"; done
    until_true 30 test "$(count_from victim '^10\.77\.4\.30:')" -ge 1 || fail "other /24: 10.77.4.30 never got in"
    until_true 30 test "$(count_from victim '^10\.77\.2\.')" -ge "$per_subnet" || fail "subnet: fewer than $per_subnet from 10.77.2.0/24"
    until_true 30 test "$(count_from victim '^10\.77\.3\.20:')" -ge "$per_ip" || fail "ip: fewer than $per_ip from 10.77.3.20"
    # Watched for 10 s while the refused ones keep redialing (static peers).
    local max_sub=0 max_ip=0 other_seen=0 s
    for _ in $(seq 20); do
        s=$(count_from victim '^10\.77\.2\.'); (( s > max_sub )) && max_sub=$s
        s=$(count_from victim '^10\.77\.3\.20:'); (( s > max_ip )) && max_ip=$s
        s=$(count_from victim '^10\.77\.4\.30:'); (( s >= 1 )) && other_seen=$((other_seen + 1))
        sleep 0.5
    done
    (( max_sub == per_subnet )) || fail "subnet: the victim held $max_sub peers from 10.77.2.0/24 (cap $per_subnet)"
    (( max_ip == per_ip )) || fail "ip: the victim held $max_ip peers from 10.77.3.20 (cap $per_ip)"
    (( other_seen == 20 )) || fail "other /24: 10.77.4.30 was connected in only $other_seen of 20 samples"
    echo "PASS subnet     5 hosts of 10.77.2.0/24 dial; the victim holds at most $max_sub (--max-peers-per-subnet $per_subnet), 20 samples over 10 s"
    echo "PASS ip         4 nodes on 10.77.3.20 dial; the victim holds at most $max_ip (--max-peers-per-ip $per_ip)"
    echo "PASS other      10.77.4.30 (another /24) stays connected throughout"
    # Pending handshakes: silent sockets that send nothing (first-byte timeout 30 s).
    local evicted0; evicted0=$(metric victim 'devmux_handshake_failures_total{' )
    host p 10.77.5.40; ip_of[p]=10.77.5.40
    # 6 silent sockets from one address: the budget keeps $pend_ip, closing the older.
    local open
    open=$(ip netns exec "${PREFIX}p" bash -c '
        for fd in 3 4 5 6 7 8; do eval "exec $fd<>/dev/tcp/10.77.1.10/'"$P2P_PORT"'"; sleep 0.2; done
        sleep 1; n=0
        for fd in 3 4 5 6 7 8; do read -r -t 0.3 -u $fd _; [[ $? -gt 128 ]] && n=$((n + 1)); done
        echo $n')
    (( open == pend_ip )) || fail "pending per ip: $open of 6 silent sockets from 10.77.5.40 still open (cap $pend_ip)"
    # 2 each from 3 hosts of 10.77.6.0/24: the /24's budget keeps $pend_subnet.
    for i in 1 2 3; do host "q$i" "10.77.6.$((40 + i))"; done
    local holders=()
    for i in 1 2 3; do
        ip netns exec "${PREFIX}q$i" bash -c '
            exec 3<>/dev/tcp/10.77.1.10/'"$P2P_PORT"'; sleep 0.3; exec 4<>/dev/tcp/10.77.1.10/'"$P2P_PORT"'
            sleep '"$((4 - i))"'; n=0
            for fd in 3 4; do read -r -t 0.3 -u $fd _; [[ $? -gt 128 ]] && n=$((n + 1)); done
            echo $n' > "$work/q$i.open" &
        holders+=("$!")
        sleep 0.8
    done
    wait "${holders[@]}"
    local sub_open=0
    for i in 1 2 3; do sub_open=$((sub_open + $(cat "$work/q$i.open"))); done
    (( sub_open <= pend_subnet )) || fail "pending per /24: $sub_open of 6 silent sockets from 10.77.6.0/24 open (cap $pend_subnet)"
    local evicted1; evicted1=$(metric victim 'devmux_handshake_failures_total{' )
    echo "PASS pending    6 silent sockets from 10.77.5.40: $open left open (--max-pending-per-ip $pend_ip); 6 from three hosts of 10.77.6.0/24: $sub_open open (--max-pending-per-subnet $pend_subnet); handshake failures counted $evicted0 → $evicted1"
    (( $(count_from victim '^10\.77\.4\.30:') >= 1 )) || fail "other: 10.77.4.30 lost its connection under the silent sockets"
    echo "distinct: subnet held $max_sub/$per_subnet, ip held $max_ip/$per_ip, pending per ip $open/$pend_ip, pending per /24 $sub_open/$pend_subnet"
}

echo "netns: namespaces ${PREFIX}*, 10.77.0.0/16, work dir $work; $( ((netem)) && echo "tc netem available" || echo "tc netem unavailable on this kernel (\"Specified qdisc kind is unknown\"): impairment by tests/examples/netem_relay")"
started=$(now)
case $check in
    '') scenario_plain ;;
    *) "scenario_$check"; echo "check $check: passed in $(since "$started")s" ;;
esac
