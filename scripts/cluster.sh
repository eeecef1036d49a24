#!/usr/bin/env bash
# The reference deployment of several instances, all on loopback: a throwaway PostgreSQL,
# two `musit-tui --serve` instances over it sharing one media directory and one signing
# key, and nginx round-robin in front.
#   scripts/cluster.sh up     start it and print the URL to give players (--server URL)
#   scripts/cluster.sh down   stop it and remove its files
#   scripts/cluster.sh status what runs, and where
#   scripts/cluster.sh kill a|b    SIGKILL one instance (nginx sends its requests to the other)
#   scripts/cluster.sh start a|b   start it again on its port
# MUSIT_CLUSTER_DIR (default /tmp/musit-cluster) holds its state; MUSIT_BIN the binary
# (default .build/debug/musit-tui; `swift build -c release` for a faster one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MUSIT_CLUSTER_DIR:-/tmp/musit-cluster}
bin=${MUSIT_BIN:-$root/.build/debug/musit-tui}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

wait_healthy() {
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "cluster: nothing answers on port $1; see $dir/*.log" >&2
    return 1
}

start_instance() {
    MUSIT_DATABASE_URL=$(cat "$dir/database") MUSIT_JWT_SECRET=$(cat "$dir/secret") MUSIT_MEDIA="$dir/media" \
        MUSIT_TRUSTED_PROXIES=127.0.0.1 "$bin" --serve --port "$(cat "$dir/$1.port")" --data "$dir/$1" >> "$dir/$1.log" 2>&1 &
    echo $! > "$dir/$1.pid"
}

up() {
    [ -x "$bin" ] || { echo "cluster: build first (swift build), or set MUSIT_BIN" >&2; exit 1; }
    command -v nginx >/dev/null || { echo "cluster: nginx is missing (make deps installs it)" >&2; exit 1; }
    [ -x "$pgbin/initdb" ] || { echo "cluster: PostgreSQL is missing (make deps installs it)" >&2; exit 1; }
    [ ! -f "$dir/url" ] || { echo "cluster: already up at $(cat "$dir/url") (scripts/cluster.sh down first)" >&2; exit 1; }
    mkdir -p "$dir/media" "$dir/a" "$dir/b"
    [ "$(id -u)" -ne 0 ] || { mkdir -p "$dir/pg"; chown postgres:postgres "$dir/pg"; }
    pgport=$(free_port)
    as_pg "$pgbin/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w -o "-k $dir/pg -h 127.0.0.1 -p $pgport -c max_connections=200" start >/dev/null
    echo "postgres://postgres@127.0.0.1:$pgport/postgres" > "$dir/database"
    (umask 077; head -c 32 /dev/urandom | base64 | tr -d '=+/' > "$dir/secret")
    ports=()
    for name in a b; do
        free_port > "$dir/$name.port"
        start_instance "$name"
        ports+=("$(cat "$dir/$name.port")")
    done
    for port in "${ports[@]}"; do wait_healthy "$port"; done
    port=$(free_port)
    cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream musit {
        server 127.0.0.1:${ports[0]} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:${ports[1]} max_fails=1 fail_timeout=2s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 200m;
        location / {
            proxy_pass http://musit;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # Long-polls hold up to 60 s; uploads and streams go straight through.
            proxy_read_timeout 90s;
            proxy_request_buffering off;
            proxy_buffering off;
            # Unbuffered, nginx relays as much as its buffer holds at a time: the default
            # (one page) cut a 64 KiB Range answer into many writes, 2.6k req/s against 4.8k.
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;
            proxy_busy_buffers_size 128k;
            # An instance that died: the request goes to the other one.
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
CONF
    nginx -c "$dir/nginx.conf" -p "$dir"
    wait_healthy "$port"
    echo "http://127.0.0.1:$port" > "$dir/url"
    echo "cluster: $(cat "$dir/url") (nginx) → instances on ${ports[0]} and ${ports[1]}, PostgreSQL on $pgport"
}

down() {
    [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    for name in a b; do
        [ -f "$dir/$name.pid" ] && kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
    done
    sleep 0.5
    [ -d "$dir/pg/data" ] && as_pg "$pgbin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    echo "cluster: down"
}

status() {
    [ -f "$dir/url" ] || { echo "cluster: down"; return; }
    echo "url: $(cat "$dir/url")"
    for name in a b; do
        pid=$(cat "$dir/$name.pid")
        state=$(kill -0 "$pid" 2>/dev/null && echo running || echo stopped)
        echo "instance $name: port $(cat "$dir/$name.port"), pid $pid, $state"
    done
    echo "database: $(cat "$dir/database")"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    kill)
        [[ "${2:-}" =~ ^[ab]$ ]] || { echo "usage: scripts/cluster.sh kill a|b" >&2; exit 2; }
        kill -9 "$(cat "$dir/$2.pid")" 2>/dev/null || true
        echo "cluster: instance $2 killed" ;;
    start)
        [[ "${2:-}" =~ ^[ab]$ ]] || { echo "usage: scripts/cluster.sh start a|b" >&2; exit 2; }
        start_instance "$2"
        wait_healthy "$(cat "$dir/$2.port")"
        echo "cluster: instance $2 up again on $(cat "$dir/$2.port")" ;;
    *) echo "usage: scripts/cluster.sh up|down|status|kill a|b|start a|b" >&2; exit 2 ;;
esac
