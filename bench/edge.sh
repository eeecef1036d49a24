#!/usr/bin/env bash
# The HTTP edge, this tree beside builds of other revisions and beside the floors, in one
# run on the same cores:
#   - long-poll fan-out at 1,000 and 10,000 polls, keep-alive and a connection per poll,
#     beside the C floor (bench/holdserver.c): p50, p99, p99/floor, bytes per held poll
#   - 64 KiB Range GETs and whole-file GETs at 1/16/256 connections beside nginx (sendfile)
#   - the 16-connection cells again, every server in turn, 5 rounds, medians and ratios,
#     with the NIO floor (bench/niofloor: SwiftNIO alone, from memory and with sendfile)
# MUSIT_BASELINE_BINS="name=path,name=path": release builds of other revisions (for one:
# git worktree add /tmp/prev REV && cd /tmp/prev && swift build -c release --static-swift-stdlib);
# a path ending in @split runs that binary as the split deployment (gateway + Accounts, Library, Social and Stats).
# EDGE_POLLS (default "1000 10000"; 0 leaves the polls out), LONGPOLL_ROUNDS (default 3), EDGE_SECONDS (default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"
for p in nginx-light wrk; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
bin=${MUSIT_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
    bin="$root/.build/release/musit-tui"
fi
[ -f "$out/track180.mp3" ] || "$here/audio.sh" >/dev/null
seconds=${EDGE_SECONDS:-5}

if [ "${EDGE_POLLS:-}" != 0 ]; then
    MUSIT_BASELINE_BINS=${MUSIT_BASELINE_BINS:-} python3 "$here/longpoll.py" "$bin" ${EDGE_POLLS:-1000 10000}
    echo
fi

# Every server gets the same file; their URLs carry a media token, as a player's do.
names=(this) bins=("$bin")
IFS=, read -ra extra <<< "${MUSIT_BASELINE_BINS:-}"
for e in "${extra[@]}"; do names+=("${e%%=*}"); bins+=("${e#*=}"); done
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; kill "$(cat "$out/nginx.pid" 2>/dev/null)" 2>/dev/null || true; }
trap cleanup EXIT
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
urls=()
for i in "${!bins[@]}"; do
    data=$(mktemp -d)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    bin_i=${bins[$i]} role=()
    if [[ $bin_i == *@split ]]; then
        # The split deployment: Accounts, Library, Social and Stats alone, then the gateway reaching them.
        bin_i=${bin_i%@split}
        role=(--role gateway)
        for service in accounts library social stats; do
            grpc=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            "$bin_i" --serve --role "$service" --grpc-port "$grpc" --port 0 --data "$data" > /dev/null 2>&1 &
            pids+=($!)
            sleep 0.5
            # An older build refuses the role of a service it keeps in its gateway (Accounts, Library).
            kill -0 "${pids[-1]}" 2>/dev/null && role+=(--"$service" "127.0.0.1:$grpc")
        done
    fi
    MUSIT_BCRYPT_COST=4 "$bin_i" --serve --port "$port" --data "$data" "${role[@]}" > /dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    base="http://127.0.0.1:$port/api/v1"
    curl -sf -X POST "$base/auth/register" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"correct horse"}' > /dev/null
    token=$(curl -sf -X POST "$base/auth/login" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"correct horse"}' | json accessToken)
    id=$(curl -sf -X POST "$base/songs" -H "authorization: Bearer $token" -H 'content-type: audio/mpeg' \
        --data-binary @"$out/track180.mp3" | json id)
    media=$(curl -sf "$base/songs/$id/stream" -H "authorization: Bearer $token" | json token)
    urls+=("$base/songs/$id/audio?token=$media")
done
# nginx serving the same file.
. "$here/nginx.sh"
nginx_serve "$out" "$out/track180.mp3"
# The NIO floor (bench/niofloor): SwiftNIO alone answering the same requests from memory
# and with sendfile, what any server on NIO starts from. EDGE_NIOFLOOR=0 leaves it out.
if [ "${EDGE_NIOFLOOR:-1}" = 1 ]; then
    floor="$here/niofloor/.build/release/niofloor"
    [ -x "$floor" ] || (cd "$here/niofloor" && swift build -c release 2>&1 | tail -1)
    for mode in memory sendfile; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$floor" "$port" "$out/track180.mp3" "$mode" > /dev/null 2>&1 &
        pids+=($!)
        for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/track.mp3" && break; sleep 0.1; done
        names+=("nio-$mode") urls+=("http://127.0.0.1:$port/track.mp3")
    done
fi
cat > "$out/range.lua" <<'LUA'
wrk.headers["Range"] = "bytes=1048576-1114111"
LUA
# Warm every server's caches the same way (a song asked for by range twice is kept in memory).
for u in "${urls[@]}" "$nginx_url"; do
    for _ in 1 2 3; do curl -sf -o /dev/null -H 'Range: bytes=1048576-1114111' "$u"; done
done

. "$here/wrk_table.sh"
echo "== wrk on loopback, ${seconds} s per cell, beside nginx (wrk shares the 2 cores with the server)"
for i in "${!bins[@]}"; do
    wrk_table "$seconds" "$out/range.lua" "${names[$i]}" "${urls[$i]}" nginx "$nginx_url"
done

# One cell of 5 s can be 20% off on shared cores: the 16-connection cells again, every
# server in turn, 5 rounds; medians, and each round's ratios.
echo
echo "== 16 connections, every server in turn, 5 rounds of ${seconds} s"
rate() {  # kind url -> req/s (range) or bytes/s (full)
    local args=(-t2 -c16 -d"${seconds}s" --timeout 10s)
    [ "$1" = range ] && args+=(-s "$out/range.lua")
    wrk "${args[@]}" "$2" 2>/dev/null | awk -v kind="$1" '
        /Requests\/sec/ { r = $2 }
        /Transfer\/sec/ { v = $2; n = v + 0; u = v; gsub(/[0-9.]|\/s/, "", u);
                          t = n * ((u == "GB") ? 1e9 : (u == "MB") ? 1e6 : (u == "KB") ? 1e3 : 1) }
        END { print (kind == "range") ? r : t }'
}
for kind in range full; do
    declare -A got=()
    for round in 1 2 3 4 5; do
        for i in "${!names[@]}"; do got[${names[$i]},$round]=$(rate $kind "${urls[$i]}"); done
        got[nginx,$round]=$(rate $kind "$nginx_url")
    done
    med() { for r in 1 2 3 4 5; do echo "${got[$1,$r]}"; done | sort -g | sed -n 3p; }
    for name in "${names[@]}" nginx; do
        unit=$([ $kind = range ] && echo "req/s" || echo "MB/s")
        m=$(med "$name")
        [ $kind = full ] && m=$(awk -v x="$m" 'BEGIN { printf "%.0f", x / 1e6 }')
        line=$(printf "  %-6s %-10s median %8s %s" "$kind" "$name" "$m" "$unit")
        if [ "$name" != nginx ]; then
            ratios=$(for r in 1 2 3 4 5; do awk -v a="${got[$name,$r]}" -v b="${got[nginx,$r]}" 'BEGIN { printf "%.2f ", a / b }'; done)
            median=$(for r in 1 2 3 4 5; do awk -v a="${got[$name,$r]}" -v b="${got[nginx,$r]}" 'BEGIN { printf "%.3f\n", a / b }'; done | sort -g | sed -n 3p)
            line+=$(printf "   /nginx %.2fx (rounds %s)" "$median" "$ratios")
            if [ "$name" != this ]; then
                rel=$(for r in 1 2 3 4 5; do awk -v a="${got[this,$r]}" -v b="${got[$name,$r]}" 'BEGIN { printf "%.3f\n", a / b }'; done | sort -g | sed -n 3p)
                line+=$(printf "   this/%s %.2fx" "$name" "$rel")
            fi
        fi
        echo "$line"
    done
    unset got
done
echo "  (targets: Range >= 0.8x nginx, whole files >= 0.95x nginx at 16 connections)"
