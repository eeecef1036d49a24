# Sourced by the benchmarks that put Musit beside nginx.
#   nginx_serve OUT FILE
# starts nginx (2 workers, sendfile, its access log buffered as a busy site's is) serving
# FILE as /track.mp3 from OUT/www, its pid in OUT/nginx.pid, and sets nginx_url.
nginx_serve() {
    local out=$1 file=$2 port
    mkdir -p "$out/www"
    cp "$file" "$out/www/track.mp3"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$out/nginx.conf" <<CONF
worker_processes 2;
pid $out/nginx.pid;
error_log /dev/null;
events { worker_connections 4096; }
http { access_log $out/nginx-access.log combined buffer=64k; sendfile on; server { listen 127.0.0.1:$port; root $out/www; } }
CONF
    nginx -c "$out/nginx.conf"
    sleep 0.5
    nginx_url="http://127.0.0.1:$port/track.mp3"
}
