#!/usr/bin/env bash
# The services, measured side by side in one run:
#   1. the same internal call between two processes over gRPC (HTTP/2, protobuf) and over
#      JSON on HTTP/1.1 (bench/rpc): p50, p99, calls/s, CPU per call in caller and callee,
#      for a trivial call (health Check) and a real one (Stats' Overview), 1 and 16 callers;
#   2. chat end to end (bench/chat.py): all-in-one, the split deployment, and the previous
#      revision's build;
#   3. long-poll fan-out and Range GETs (bench/edge.sh): the same three.
# PREV_BIN: the previous revision's release build (default: built from PREV_REV, HEAD~1 of
# the services work, in a worktree). SERVICES_CALLS (default 20000), MESSAGES (default 400).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
bin="$root/.build/release/musit-tui"
(cd "$here/rpc" && swift build -c release 2>&1 | tail -1)
bench="$here/rpc/.build/release/musit-rpc-bench"
prev=${PREV_BIN:-}
if [ -z "$prev" ]; then
    rev=${PREV_REV:-cd43de2}
    [ -d "$root/.build-prev-src" ] || git -C "$root" worktree add -f "$root/.build-prev-src" "$rev" >/dev/null
    git -C "$root/.build-prev-src" checkout -q "$rev"
    (cd "$root/.build-prev-src" && swift build -c release --product musit-tui --static-swift-stdlib \
        --scratch-path "$root/.build-prev" 2>&1 | tail -1)
    prev="$root/.build-prev/release/musit-tui"
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== 1. one internal call, gRPC against JSON/HTTP 1.1 (two processes on loopback)"
data=$(mktemp -d) grpc=$(port) http=$(port)
"$bin" --serve --role stats --grpc-port "$grpc" --port "$http" --data "$data" > /dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
# Some plays, so that Overview reads rows.
for i in $(seq 200); do
    curl -sf -X POST "http://127.0.0.1:$http/rpc/musit.stats.v1.Stats/RecordPlay" \
        -d "{\"userId\":$((i % 7 + 1)),\"songId\":$((i % 23 + 1)),\"event\":\"PLAY_EVENT_START\",\"title\":\"Song $((i % 23))\",\"artist\":\"Artist $((i % 5))\"}" > /dev/null
done
results="$out/rpc.txt"
: > "$results"
for method in check overview; do
    for c in 1 16; do
        calls=${SERVICES_CALLS:-20000}
        [ "$method" = overview ] && calls=$((calls / 4))
        "$bench" --grpc "127.0.0.1:$grpc" --http "127.0.0.1:$http" --pid "$pid" --method "$method" \
            --calls "$calls" --concurrency "$c" | tee -a "$results"
    done
done
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(x.split("=") for x in f[2:])
    rows[(f[1], kv["c"], f[0])] = {k: float(v) for k, v in kv.items()}
print()
print(f"  {'call':<10} {'callers':>7} | {'p50 µs gRPC/JSON':>17} | {'p99 µs gRPC/JSON':>17} | {'calls/s gRPC/JSON':>18} | {'CPU µs/call gRPC/JSON':>22} | JSON/gRPC CPU")
for (method, c) in sorted({(m, c) for m, c, _ in rows}, key=lambda k: (k[0], int(k[1]))):
    g, j = rows[(method, c, "grpc")], rows[(method, c, "json")]
    gc, jc = g["server_cpu_us"] + g["client_cpu_us"], j["server_cpu_us"] + j["client_cpu_us"]
    print(f"  {method:<10} {c:>7} | {g['p50_us']:>7.0f} / {j['p50_us']:<7.0f} | {g['p99_us']:>7.0f} / {j['p99_us']:<7.0f} |"
          f" {g['rate']:>8.0f} / {j['rate']:<7.0f} | {gc:>9.1f} / {jc:<10.1f} | {jc / gc:.2f}×")
PY
echo
echo "== 2. chat end to end: all-in-one, split, previous revision"
python3 "$here/chat.py" --messages "${MESSAGES:-400}" "prev=$prev" "all-in-one=$bin" "split=$bin@split"
echo
echo "== 3. fan-out and Range: all-in-one beside split and the previous revision"
MUSIT_BIN="$bin" MUSIT_BASELINE_BINS="split=$bin@split,prev=$prev" EDGE_POLLS="${EDGE_POLLS:-10000}" "$here/edge.sh"
