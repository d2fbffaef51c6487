# shellcheck shell=bash
# Shared by the load scripts (proxy_load.sh, proxy_rounds.sh, upload_stall.sh): the work
# directory and its cleanup, ports, the origin's test certificates and nginx.conf, egress-proxy's
# config and its listen port. Sourced, not run; the caller sets `set -euo pipefail`.

work_dir() { # $1 = name: WORK = a fresh temp dir; on exit the processes in PIDS are killed and
    # WORK removed (KEEP_WORK=1 keeps it)
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    chmod 755 "$WORK"
    PIDS=()
    trap cleanup EXIT
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait until 127.0.0.1:$1 accepts, or fail after ~15 s
    for _ in $(seq 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

egress_port() { # $1 = egress-proxy's stderr log: prints the port of its "listen" address once it
    # has logged it (it binds port 0), or nothing after ~15 s
    local port
    for _ in $(seq 150); do
        port=$(grep -o '"listen":"127.0.0.1:[0-9]*"' "$1" 2>/dev/null | head -1 | grep -o '[0-9]*"$' | tr -d '"' || true)
        if [ -n "$port" ]; then echo "$port"; return 0; fi
        sleep 0.1
    done
}

mkcert() { # $1 = file prefix, $2 = CN: a P-256 CA
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

origin_certs() { # $1 = host name: origin-ca.{pem,key} and a leaf origin.{pem,key} in the current directory
    mkcert origin-ca "origin bench CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout origin.key -out origin.csr \
        -subj "/CN=$1" 2>/dev/null
    printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$1" >origin.ext
    openssl x509 -req -in origin.csr -CA origin-ca.pem -CAkey origin-ca.key -CAcreateserial -days 2 \
        -extfile origin.ext -out origin.pem 2>/dev/null
}

nginx_conf() { # $1 = worker_connections; stdin = the server blocks. Writes $WORK/nginx.conf:
    # one worker in the foreground, no access log, temp files under $WORK/nginx-tmp, keep-alive
    # connections that serve any number of requests.
    mkdir -p "$WORK/nginx-tmp"
    {
        if [ "$(id -u)" = 0 ]; then echo "user root;"; fi
        cat <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections $1; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
EOF
        cat
        echo "}"
    } >"$WORK/nginx.conf"
}

egress_config() { # $1 = dir (CA made there), $2 = listen, $3 = audit path, $4 = host, $5 = origin port, $6 = origin CA
    "$EGRESS_BIN" ca init --dir "$1" >/dev/null
    cat >"$1/config.toml" <<CFG
listen = "$2"
audit = "$3"
[ca]
cert = "ca.pem"
key = "ca.key"
[egress]
allow = ["$4:$5"]
[upstream]
extra_roots = ["$6"]
[upstream.hosts]
"$4" = "127.0.0.1"
[dlp]
mode = "${EGRESS_DLP_MODE:-block}"
CFG
}
