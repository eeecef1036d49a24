#!/usr/bin/env bash
# Property-based API check: schemathesis generates requests from /openapi.yaml against a
# live `musit-tui --serve` on loopback and fails on any 5xx or any response that does not
# match the document. Seeded, so a run is repeatable.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MUSIT_BIN:-$root/.build/debug/musit-tui}
command -v schemathesis >/dev/null || python3 -m pip install -q "schemathesis==4.32.5"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MUSIT_BCRYPT_COST=4 "$bin" --serve --port "$port" --data "$data" > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
token=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"username":"fuzzer","password":"correct horse"}' | python3 -c 'import sys, json; print(json.load(sys.stdin)["accessToken"])')
# A song, so the song routes have something to find.
curl -sf -X POST "http://127.0.0.1:$port/api/v1/songs" -H "authorization: Bearer $token" -H 'content-type: audio/mpeg' \
    --data-binary @"$root/Resources/demo/03-coda.mp3" >/dev/null
# The upload is fuzzed too, as audio/mpeg and as multipart/form-data: schemathesis cannot
# make an MP3, so every body it makes must be refused with a documented problem.
# Excluded: the long-poll (it holds for its timeout by design); it has its own tests.
schemathesis run "http://127.0.0.1:$port/openapi.yaml" -H "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance --max-examples 15 --seed 20261124 \
    --exclude-name 'GET /api/v1/events' --no-color
