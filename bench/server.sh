#!/usr/bin/env bash
# Backend benchmarks on loopback, side by side where a peer exists:
#   - long-poll fan-out: 1,000 and 10,000 held polls woken by one event (latency, RSS)
#   - wrk: 64 KiB Range GETs and full-file GETs at 1/16/256 connections, Musit vs nginx
#   - uploads of a 7 MB MP3 by curl (upload.py; beside mpg123's full decode), and one login
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"
for p in nginx-light wrk; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
bin="$root/.build/release/musit-tui"
[ -f "$out/track180.mp3" ] || "$here/audio.sh" >/dev/null

python3 "$here/longpoll.py" "$bin" 1000 10000
echo
# MUSIT_BASELINE_BIN: a build of another revision, timed beside this one.
python3 "$here/upload.py" "$out/track180.mp3" "$bin" ${MUSIT_BASELINE_BIN:-}

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --serve --port "$port" --data "$data" > /dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; kill $(cat "$out/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse"}' > /dev/null
echo
echo "== one login (bcrypt cost 11) and one upload of a 7 MB MP3 (hash, validate, index HLS)"
login=$( { /usr/bin/time -f "%e" curl -sf -o "$out/login.json" -X POST "http://127.0.0.1:$port/api/v1/auth/login" \
    -H 'content-type: application/json' -d '{"username":"bench","password":"correct horse"}'; } 2>&1 )
token=$(python3 -c 'import json; print(json.load(open("'"$out"'/login.json"))["accessToken"])')
echo "  login: ${login} s"
upload=$( { /usr/bin/time -f "%e" curl -sf -o "$out/song.json" -X POST "http://127.0.0.1:$port/api/v1/songs" \
    -H "authorization: Bearer $token" -H 'content-type: audio/mpeg' --data-binary @"$out/track180.mp3"; } 2>&1 )
id=$(python3 -c 'import json; print(json.load(open("'"$out"'/song.json"))["id"])')
echo "  upload of $(stat -c %s "$out/track180.mp3") bytes: ${upload} s"
media=$(curl -sf "http://127.0.0.1:$port/api/v1/songs/$id/stream" -H "authorization: Bearer $token" |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')

# nginx serving the same file.
. "$here/nginx.sh"
nginx_serve "$out" "$out/track180.mp3"
musit_url="http://127.0.0.1:$port/api/v1/songs/$id/audio?token=$media"
cat > "$out/range.lua" <<'LUA'
wrk.headers["Range"] = "bytes=1048576-1114111"
LUA
echo
echo "== wrk on loopback, 5 s per cell (wrk shares the 2 cores with the server)"
. "$here/wrk_table.sh"
wrk_table 5 "$out/range.lua" musit "$musit_url" nginx "$nginx_url"
echo "  (target: Range req/s at 16 connections >= 0.5x nginx; both log every request: Musit at info, nginx its access log)"

# The 2 cores are shared by wrk, the server and whatever else runs, so one 5 s cell can be
# 20% off. The target cell again, Musit and nginx taking turns, and the ratio of each pair.
echo
echo "== Range at 16 connections, Musit and nginx in turn, 5 pairs of 5 s"
ratios=()
for i in 1 2 3 4 5; do
    m=$(wrk -t2 -c16 -d5s -s "$out/range.lua" "$musit_url" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
    n=$(wrk -t2 -c16 -d5s -s "$out/range.lua" "$nginx_url" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
    r=$(awk -v a="$m" -v b="$n" 'BEGIN { printf "%.2f", a / b }')
    ratios+=("$r")
    printf "  pair %d: Musit %6.0f req/s, nginx %6.0f req/s, ratio %sx\n" "$i" "$m" "$n" "$r"
done
printf "  median ratio %sx (min %sx, max %sx)\n" \
    "$(printf "%s\n" "${ratios[@]}" | sort -n | sed -n 3p)" \
    "$(printf "%s\n" "${ratios[@]}" | sort -n | head -1)" "$(printf "%s\n" "${ratios[@]}" | sort -n | tail -1)"
