#!/usr/bin/env bash
# Media through a deployment of several instances: wrk with 64 KiB Range GETs and full-file
# GETs of one song at 1/16/256 connections, through nginx round-robin over two instances on
# PostgreSQL (scripts/cluster.sh), beside a plain nginx serving the same file from disk
# (bench/server.sh does the same for one instance). Prints req/s for Range, bytes/s for full
# GETs, and cluster / nginx.
#   bench/range_cluster.sh http://127.0.0.1:PORT    (the URL scripts/cluster.sh up printed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
mkdir -p "$out"
cluster=${1:?usage: range_cluster.sh CLUSTER_URL}
dpkg-query -W -f='${Status}' wrk 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
[ -f "$out/track180.mp3" ] || "$here/audio.sh" >/dev/null
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# A user of its own each run, so the script can run again on the same cluster.
user="range$RANDOM$RANDOM"
token=$(curl -sf -X POST "$cluster/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"correct horse\"}" | json accessToken)
# The library keeps one copy of a file: run again, the upload answers 409 naming that song.
id=$(curl -s -X POST "$cluster/api/v1/songs" -H "authorization: Bearer $token" -H 'content-type: audio/mpeg' \
    --data-binary @"$out/track180.mp3" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("id") or d["detail"].rsplit(" ", 1)[1])')
media=$(curl -sf "$cluster/api/v1/songs/$id/stream" -H "authorization: Bearer $token" | json token)

# The plain nginx: as many workers as the cluster's nginx, no access log (the cluster's
# nginx keeps none, and its instances log warnings only under bench/scale.sh).
www=$(mktemp -d)
chmod 755 "$www"  # nginx's workers read it as another user
cp "$out/track180.mp3" "$www/track.mp3"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$www/nginx.conf" <<CONF
worker_processes 2;
pid $www/nginx.pid;
error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$nport; root $www; } }
CONF
trap 'kill $(cat "$www/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$www"' EXIT
nginx -c "$www/nginx.conf" -p "$www"
sleep 0.5

cluster_url="$cluster/api/v1/songs/$id/audio?token=$media"
nginx_url="http://127.0.0.1:$nport/track.mp3"
echo 'wrk.headers["Range"] = "bytes=1048576-1114111"' > "$www/range.lua"
# Both must give the same 64 KiB: a 403 or a 404 would make a fast and empty cell.
for url in "$cluster_url" "$nginx_url"; do
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H 'Range: bytes=1048576-1114111' "$url")
    [ "$got" = "206 65536" ] || { echo "range_cluster: $url answers $got, not 206 65536" >&2; exit 1; }
done

# 3 s per cell keeps the whole at about 40 s; on 2 shared cores a cell can be 20% off.
echo "== media through nginx over two instances (PostgreSQL) vs nginx serving the file; wrk, 3 s per cell"
. "$here/wrk_table.sh"
wrk_table 3 "$www/range.lua" cluster "$cluster_url" nginx "$nginx_url"
echo "  (range: 64 KiB at 1 MiB; full: the whole $(($(stat -c %s "$out/track180.mp3") / 1000)) kB file; !N: N errors or non-2xx answers)"
