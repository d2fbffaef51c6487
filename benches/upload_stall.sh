#!/usr/bin/env bash
# Head-of-line blocking on a shard: small GETs through egress-proxy, alone and beside a large
# DLP-scanned upload on the same proxy (docs/PERFORMANCE.md, run 13).
#
# A shard runs one task at a time. An upload that is always ready (decrypt, scan, re-encrypt)
# delays the other connections on its thread; this script measures by how much.
#
# Everything listens on 127.0.0.1 only; every process is started here and killed on exit.
# Needs nginx, curl, oha and python3 (benches/proxy_load.sh installs them) and a release build.
#
# Usage: benches/upload_stall.sh
# Env:   EGRESS_BIN=path  SHARDS="1 2" (TOKIO_WORKER_THREADS values)  UPLOAD_MIB=256
#        DURATION=8s  CONC=4  EGRESS_DLP_MODE=block|off  OUT=path/to/report.md
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EGRESS_BIN=${EGRESS_BIN:-$ROOT/target/release/egress-proxy}
SHARDS=${SHARDS:-"1 2"}
UPLOAD_MIB=${UPLOAD_MIB:-256}
DURATION=${DURATION:-8s}
CONC=${CONC:-4}
OUT=${OUT:-$ROOT/benches/results/upload_stall.md}
HOST=bench.test
export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "upload_stall: $*" >&2; }
for tool in oha curl python3 openssl; do
    command -v "$tool" >/dev/null || { log "$tool is required (benches/proxy_load.sh installs it)"; exit 1; }
done
[ -x /usr/sbin/nginx ] || { log "nginx is required"; exit 1; }
[ -x "$EGRESS_BIN" ] || { log "no $EGRESS_BIN: cargo build --release -p egress-proxy"; exit 1; }

# work_dir, free_port, wait_port, origin_certs, nginx_conf, egress_config
. "$ROOT/benches/lib.sh"
work_dir upload-stall
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- origin: nginx, TLS, /upload
cd "$WORK"
origin_certs "$HOST"
mkdir -p www
head -c 1024 /dev/zero | tr '\0' 'a' >www/hello.txt
NGINX_PORT=$(free_port)
nginx_conf 1024 <<EOF
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/origin.pem;
        ssl_certificate_key $WORK/origin.key;
        root $WORK/www;
        # nginx reads and discards the body of a request it answers with return.
        client_max_body_size 0;
        location = /upload { return 204; }
    }
EOF
/usr/sbin/nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" || { cat nginx-error.log >&2; exit 1; }

# The upload: the DLP bench's clean LLM-request JSON, repeated (no finding, so it is forwarded).
python3 - "$ROOT/benches" "$UPLOAD_MIB" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import dlp_peers
paths = dlp_peers.corpora(".")
chunk = open(paths["llm_json"], "rb").read()
with open("upload.json", "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(chunk)
PY

# ---------------------------------------------------------------- egress-proxy
EPORT=$(free_port)
egress_config "$WORK/egress" "127.0.0.1:$EPORT" /dev/null "$HOST" "$NGINX_PORT" "$WORK/origin-ca.pem"

PROXY=(-x "http://127.0.0.1:$EPORT" --cacert "$WORK/egress/ca.pem")
URL="https://$HOST:$NGINX_PORT"

# measure LABEL: one oha run of small GETs through the proxy; prints a table row.
measure() {
    oha --no-tui -z "$DURATION" -c "$CONC" --no-pre-lookup "${PROXY[@]}" "$URL/hello.txt" \
        --output-format json -o "$WORK/oha.json" >/dev/null 2>&1
    python3 - "$WORK/oha.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p, s = d["latencyPercentiles"], d["summary"]
ms = lambda v: f"{v * 1e3:.2f}"
print(f"| {sys.argv[2]} | {s['requestsPerSec']:.0f} | {ms(p['p50'])} | {ms(p['p99'])} | {ms(p['p99.9'])} | {ms(s['slowest'])} |")
PY
}

ROWS=()
for s in $SHARDS; do
    log "shards=$s"
    TOKIO_WORKER_THREADS=$s "$EGRESS_BIN" run --config "$WORK/egress/config.toml" >/dev/null 2>"$WORK/egress.log" &
    EPID=$!
    PIDS+=("$EPID")
    wait_port "$EPORT" || { cat "$WORK/egress.log" >&2; exit 1; }
    oha --no-tui -n 200 -c 4 --no-pre-lookup "${PROXY[@]}" "$URL/hello.txt" --output-format quiet >/dev/null 2>&1 || true
    ROWS+=("$(measure "$s shard(s), GETs alone")")
    : >"$WORK/uploads.log"
    (while true; do
        curl -s -o /dev/null "${PROXY[@]}" --http1.1 -H 'Content-Type: application/json' \
            --data-binary @"$WORK/upload.json" "$URL/upload" -w '%{http_code} %{speed_upload}\n' \
            >>"$WORK/uploads.log" || true
    done) &
    UP=$!
    sleep 1
    ROWS+=("$(measure "$s shard(s), beside the upload")")
    kill "$UP" 2>/dev/null || true
    wait "$UP" 2>/dev/null || true
    pkill -f "data-binary @$WORK/upload.json" 2>/dev/null || true
    SPEED=$(awk '$1 == 204 {n++; s += $2} END {if (n) printf "%d uploads finished, %.0f MB/s each on average", n, s / n / 1e6; else print "no upload finished"}' "$WORK/uploads.log")
    ROWS+=("| ($s shard(s): $SPEED) | | | | | |")
    kill "$EPID" 2>/dev/null || true
    wait "$EPID" 2>/dev/null || true
done

mkdir -p "$(dirname "$OUT")"
{
    echo "# upload_stall.sh results"
    echo
    echo "GETs: \`oha -z $DURATION -c $CONC\` of a 1 KiB file through egress-proxy; upload: ${UPLOAD_MIB} MiB of"
    echo "LLM-request JSON by \`curl --data-binary\` in a loop through the same proxy, DLP mode"
    echo "\`${EGRESS_DLP_MODE:-block}\`. Binary: \`$EGRESS_BIN\`. $(nproc) CPUs, load at end: $(uptime | sed 's/.*load average: //')."
    echo
    echo "| setup | req/s | p50 ms | p99 ms | p99.9 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
