#!/usr/bin/env bash
# Interleaved A/B runs of one benchmark cell, for differences too small for
# `wsbench all`'s medians (this VM's speed drifts over minutes): each round
# runs every variant once, back to back, each a fresh server and client
# process pinned as `wsbench all` pins them, and the summary pairs every
# variant with the first one round by round.
#
#   scripts/ab.sh [--rounds N] [--secs S] [--cc NAME] CELL SIZE VARIANT...
#
# CELL is recv, send, echo or connect; VARIANT is a client name (raw,
# wsclient, wsclient-events, tokio-tungstenite, tokio-websockets,
# fastwebsockets) or BINARY:CLIENT, a wsbench binary built from other code
# (default: target/release/wsbench, built first). Examples:
#   scripts/ab.sh --rounds 16 connect 16 tokio-websockets wsclient
#   cp target/release/wsbench /tmp/wsbench-before   # ... change, then:
#   scripts/ab.sh send 65536 /tmp/wsbench-before:wsclient wsclient
#   scripts/ab.sh --cc cubic recv 1048576 raw wsclient tokio-tungstenite
# Per variant: medians of the rate, MB/s, client CPU per message (per
# connect in the connect cell, within the timed connects), the server's
# busy share, echo p50; then the paired ratio of the rate to the first
# variant's in the same round (median, and in how many rounds it was
# higher) and the paired difference in CPU per message.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=10
secs=1.5
cc=()
while [[ $# -gt 0 && "$1" == --* ]]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --cc) cc=(--cc "$2"); shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [[ $# -lt 3 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
cell=$1 size=$2
shift 2
variants=("$@")

case "$cell" in
    recv) mode=send ;;
    send) mode=sink ;;
    echo | connect) mode=echo ;;
    *) echo "cell: recv, send, echo or connect" >&2; exit 2 ;;
esac
# As `wsbench all`: server and client on separate CPUs, both on one for echo.
if [[ "$cell" == echo ]]; then scpu=1; else scpu=0; fi

cargo build --release -p bench >&2
default_bin=target/release/wsbench
# Niced as `scripts/bench.sh` runs `wsbench all`, when allowed.
nice=()
if nice -n -10 true 2>/dev/null; then nice=(nice -n -10); fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

run_one() { # BINARY CLIENT -> the client's RESULT line
    local bin=$1 client=$2 port server line
    port=$((20000 + RANDOM % 10000))
    "${nice[@]}" "$bin" server --mode "$mode" --size "$size" --port "$port" --cpu "$scpu" "${cc[@]}" >/dev/null &
    server=$!
    sleep 0.3
    line=$("${nice[@]}" "$bin" run --server-pid "$server" --client "$client" --cell "$cell" --size "$size" \
        --port "$port" --secs "$secs" --warm 0.3 --cpu 1 2>/dev/null | grep '^RESULT' || true)
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    echo "${line:-RESULT failed=1}"
}

for ((r = 1; r <= rounds; r++)); do
    for i in "${!variants[@]}"; do
        v=${variants[$i]}
        if [[ "$v" == *:* ]]; then bin=${v%%:*} client=${v#*:}; else bin=$default_bin client=$v; fi
        echo "$r $i $(run_one "$bin" "$client")" >>"$out"
    done
    echo "round $r of $rounds" >&2
done

awk -v names="${variants[*]}" -v cell="$cell" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return "nan"
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    r = $1; v = $2; delete f
    for (i = 4; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["failed"] || f["secs"] <= 0 || f["msgs"] <= 0) { failed[v]++; next }
    rate[r, v] = f["msgs"] / f["secs"]
    cpu[r, v] = f["cpu_secs"] / f["msgs"] * 1e9
    rates[v] = rates[v] " " rate[r, v]
    mbs[v] = mbs[v] " " f["bytes"] / f["secs"] / 1e6
    cpus[v] = cpus[v] " " cpu[r, v]
    busy[v] = busy[v] " " (f["server_cpu_secs"] / f["secs"] * 100)
    p50[v] = p50[v] " " f["p50_ns"] / 1e3
    if (r > rounds) rounds = r
}
END {
    nv = split(names, name, " ")
    unit = (cell == "connect") ? "conn/s" : (cell == "echo") ? "round trips/s" : "msg/s"
    for (v = 0; v < nv; v++) {
        ratios = ""; diffs = ""; wins = 0; pairs = 0
        for (r = 1; r <= rounds; r++) {
            if (!((r, v) in rate) || !((r, 0) in rate)) continue
            pairs++
            ratios = ratios " " rate[r, v] / rate[r, 0]
            diffs = diffs " " cpu[r, v] - cpu[r, 0]
            if (rate[r, v] > rate[r, 0]) wins++
        }
        printf "%-40s %10.0f %s", name[v + 1], median(rates[v]), unit
        if (cell != "connect" && cell != "echo") printf "  %7.0f MB/s", median(mbs[v])
        if (cell == "echo") printf "  p50 %.1f us", median(p50[v])
        printf "  CPU %8.0f ns/%s", median(cpus[v]), (cell == "connect") ? "conn" : (cell == "echo") ? "round trip" : "msg"
        if (cell == "recv" || cell == "send") printf "  server %3.0f%%", median(busy[v])
        if (v > 0) printf "  rate vs first, paired: %.3f (%d/%d higher)  CPU %+.0f ns", median(ratios), wins, pairs, median(diffs)
        if (failed[v]) printf "  (%d runs failed)", failed[v]
        printf "\n"
    }
}' rounds=0 "$out"
