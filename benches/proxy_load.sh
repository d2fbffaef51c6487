#!/usr/bin/env bash
# Side-by-side load through a bumped (TLS-intercepted) tunnel to a local nginx:
# direct (no proxy), egress-proxy, squid-openssl (ssl-bump) and mitmproxy, measured with oha.
# Also: egress-proxy RSS idle / after load, and leaf issuance (criterion bench `certs`).
#
# Everything listens on 127.0.0.1 only; every process is started here and killed on exit.
# Writes a markdown report to stdout and to benches/results/latest.md.
#
# Usage: benches/proxy_load.sh
# Env:   PERF=1 (perf profile of each proxy run -> benches/results/perf-*.txt; skews the numbers)
#        DURATION=10s  WARMUP=5s  CONC=16  H2_PARALLEL=1  SKIP_INSTALL=1  SKIP_BUILD=1  SKIP_CRITERION=1
#        NGINX_HTTP2=0 (origin offers http/1.1 only: upstream pooling over h1 instead of one h2 conn)
#        EGRESS_DLP_MODE=block|warn|off  EGRESS_AUDIT=/dev/null (ablations)
#        EGRESS_WORKERS=N (tokio worker threads for egress-proxy)  EGRESS_BIN=path
#        PEERS="direct egress squid mitm"  (subset to run)  OUT=path/to/report.md
#        ISOLATE=0 (start nginx, oha and the proxies in this script's session, as runs before 23 did;
#          default 1: each in a session of its own, see SOLO below)
#        KA_ROUNDS=3 (h1 keep-alive rounds for egress-proxy and squid-openssl: the first in each
#          peer's own run, the others alternating the two; the verdict is the median ratio)
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
CONC=${CONC:-16}
H2_PARALLEL=${H2_PARALLEL:-1}
KA_ROUNDS=${KA_ROUNDS:-3}
PEERS=${PEERS:-"direct egress squid mitm"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/benches/results/latest.md}
CACHE=${BENCH_CACHE:-$HOME/.cache/claude-bottle-bench}
MITM_VENV=$CACHE/mitm-venv
HOST=bench.test
FILE_BYTES=1024

log() { echo "proxy_load: $*" >&2; }

# $SOLO CMD...: runs CMD in a session of its own (setsid execs in place, so $! stays the
# process's pid). With the kernel's autogroup scheduling (on by default), CPU time is shared fairly
# between sessions first and between threads second; started from this script's session, oha's
# three threads would outweigh nginx's one and a proxy's one or two, and the load generator would
# take the system under test's share of the two cores. In a deployment each of these is a separate
# service (containers, systemd units: each its own cgroup), so each gets its own group here, the
# peers alike. Measured (docs/PERFORMANCE.md, run 23). `env` is the no-op wrapper for ISOLATE=0.
SOLO=setsid
[ "${ISOLATE:-1}" = 0 ] && SOLO="env"

# work_dir, free_port, wait_port, egress_port, mkcert, origin_certs, nginx_conf, egress_config
. "$ROOT/benches/lib.sh"
work_dir proxy-load
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install (skipped when present)
HAVE_SQUID=1 HAVE_MITM=1 WHY_SQUID="" WHY_MITM=""
install_all() {
    local need_apt=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
    if ! /usr/sbin/squid -v 2>/dev/null | grep -q -- '--with-openssl'; then need_apt+=(squid-openssl); fi
    if [ ${#need_apt[@]} -gt 0 ]; then
        log "apt-get install ${need_apt[*]}"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"; } >"$WORK/apt.log" 2>&1; then
            log "apt-get failed (see below); continuing with what is installed"; tail -5 "$WORK/apt.log" >&2
        fi
    fi
    if [ ! -x "$MITM_VENV/bin/mitmdump" ]; then
        # A venv of its own: mitmproxy 11 pins old cryptography/pyOpenSSL that would break other tools.
        log "pip install mitmproxy==11.0.2 (venv $MITM_VENV)"
        mkdir -p "$CACHE"
        { python3 -m venv "$MITM_VENV" && "$MITM_VENV/bin/pip" install -q mitmproxy==11.0.2; } >"$WORK/pip.log" 2>&1 ||
            { log "mitmproxy install failed"; tail -5 "$WORK/pip.log" >&2; }
    fi
    if ! command -v oha >/dev/null; then
        log "cargo install oha --locked (takes several minutes)"
        cargo install oha --locked >"$WORK/oha.log" 2>&1 || { tail -5 "$WORK/oha.log" >&2; exit 1; }
    fi
}
[ -n "${SKIP_INSTALL:-}" ] || install_all
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null || { log "oha is required"; exit 1; }
[ -x /usr/sbin/nginx ] || { log "nginx is required"; exit 1; }
/usr/sbin/squid -v 2>/dev/null | grep -q -- '--with-openssl' || { HAVE_SQUID=0; WHY_SQUID="squid-openssl not installed"; }
[ -x "$MITM_VENV/bin/mitmdump" ] || { HAVE_MITM=0; WHY_MITM="mitmproxy not installed in $MITM_VENV"; }

if [ -z "${SKIP_BUILD:-}" ]; then
    log "cargo build --release -p egress-proxy"
    (cd "$ROOT" && cargo build --release -q -p egress-proxy)
fi
EGRESS_BIN=${EGRESS_BIN:-$ROOT/target/release/egress-proxy}
# Which source the binary was built from (set EGRESS_REV when EGRESS_BIN points elsewhere).
if [ -z "${EGRESS_REV:-}" ]; then
    EGRESS_REV=$(cd "$ROOT" && git rev-parse --short HEAD)
    if ! (cd "$ROOT" && git diff --quiet HEAD -- proxy certs dlp-rules Cargo.toml Cargo.lock); then
        EGRESS_REV="$EGRESS_REV + uncommitted changes"
    fi
fi
LOAD_START=$(uptime | sed 's/.*load average: //')

# ---------------------------------------------------------------- test CA, nginx
cd "$WORK"
origin_certs "$HOST"

NGINX_PORT=$(free_port)
STATUS_PORT=$(free_port)
mkdir -p www
head -c "$FILE_BYTES" /dev/zero | tr '\0' 'a' >www/hello.txt
nginx_conf 4096 <<EOF
    server {
        listen 127.0.0.1:$NGINX_PORT ssl$([ "${NGINX_HTTP2:-1}" = 1 ] && echo " http2");
        ssl_certificate $WORK/origin.pem;
        ssl_certificate_key $WORK/origin.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $WORK/www;
    }
    server {
        listen 127.0.0.1:$STATUS_PORT;
        location = /status { stub_status; }
    }
EOF
$SOLO /usr/sbin/nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" 2>>"$WORK/nginx-error.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" || { cat nginx-error.log >&2; exit 1; }
URL="https://$HOST:$NGINX_PORT/hello.txt"

nginx_accepts() { curl -s "http://127.0.0.1:$STATUS_PORT/status" | awk 'NR==3 {print $1}'; }

# ---------------------------------------------------------------- measurement helpers
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_tree_kb() { # a process and its children (squid's certgen helpers, ...)
    local total kids k
    total=$(rss_kb "$1")
    kids=$(pgrep -P "$1" || true)
    for k in $kids; do total=$((total + $(rss_tree_kb "$k"))); done
    echo "$total"
}
cpu_ticks() { # utime+stime of a process and its children, in clock ticks
    local total kids k
    total=$(awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0)
    kids=$(pgrep -P "$1" || true)
    for k in $kids; do total=$((total + $(cpu_ticks "$k"))); done
    echo "$total"
}
HZ=$(getconf CLK_TCK)
ROWS=$WORK/rows.tsv
: >"$ROWS"

# run_load NAME MODE PROXY_PID OHA_ARGS... : warm up, then measure; appends one TSV row.
run_load() {
    local name=$1 mode=$2 ppid=$3
    shift 3
    # Warm-up at the measured concurrency for WARMUP (default 5 s), so that the state the run
    # uses (leaf cached, upstream pooled, one upstream connection per shard) is built and the
    # process is past its start-up transient before the clock starts. Runs 1-22 warmed up with
    # 200 requests on 4 connections, run 23 with 2000: a fresh egress-proxy's first 10 s round
    # then came out slower than its second in 18 of 23 lab sets (by 3 % at the median, up to
    # 20 %); after a 10 s warm-up in 4 of 7, as chance gives (docs/PERFORMANCE.md, run 24,
    # benches/proxy_rounds.sh). Every peer gets the same warm-up.
    $SOLO oha --no-tui -z "$WARMUP" -c "$CONC" "$@" "$URL" --output-format quiet >/dev/null 2>&1 || true
    local acc0 acc1 cpu0 cpu1
    acc0=$(nginx_accepts)
    cpu0=0
    [ "$ppid" = - ] || cpu0=$(cpu_ticks "$ppid")
    local perf_pid=""
    if [ -n "${PERF:-}" ] && [ "$ppid" != - ] && command -v perf >/dev/null; then
        perf record -q -F 499 -g -p "$ppid" -o "$WORK/perf-$name-${mode// /_}.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    $SOLO oha --no-tui -z "$DURATION" -c "$CONC" "$@" "$URL" --output-format json -o "$WORK/oha-$name-${mode// /_}.json" \
        >"$WORK/oha.err" 2>&1 || { log "oha failed for $name/$mode: $(tail -3 "$WORK/oha.err")"; return 0; }
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        mkdir -p "$ROOT/benches/results"
        perf report -i "$WORK/perf-$name-${mode// /_}.data" --stdio --no-children --sort dso,symbol -g none \
            --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 \
            >"$ROOT/benches/results/perf-$name-${mode// /_}.txt" || true
    fi
    acc1=$(nginx_accepts)
    cpu1=0
    [ "$ppid" = - ] || cpu1=$(cpu_ticks "$ppid")
    python3 - "$WORK/oha-$name-${mode// /_}.json" "$name" "$mode" $((acc1 - acc0 - 1)) $((cpu1 - cpu0)) "$HZ" >>"$ROWS" <<'PY'
import json, sys
path, name, mode, conns, ticks, hz = sys.argv[1:]
d = json.load(open(path))
s = d["summary"]
lat = d.get("latencyPercentiles", {})
codes = d.get("statusCodeDistribution", {})
total = sum(codes.values())
ok = codes.get("200", 0)
errors = sum(v for k, v in d.get("errorDistribution", {}).items() if "deadline" not in k)
rps = s["requestsPerSec"]
cpu_us = (int(ticks) / int(hz)) * 1e6 / total if total and name != "direct" else None
ms = lambda v: "-" if v is None else f"{v * 1e3:.2f}"
errs = {k: v for k, v in d.get("errorDistribution", {}).items() if "deadline" not in k}
rps_s = f"{rps:.0f}"
if ok == 0:
    top = max(errs, key=errs.get) if errs else "no response"
    rps_s = f"n/a (every request failed: {top})"
print("\t".join([
    name, mode, rps_s, ms(lat.get("p50")), ms(lat.get("p99")),
    f"{ok}/{total}" + (f" ({errors} err)" if errors else ""),
    conns, "-" if cpu_us is None else f"{cpu_us:.0f}",
]))
PY
}

# run_peer NAME PROXY_PID OHA_PROXY_ARGS... : h1 keep-alive, h1 new connection, h2
run_peer() {
    local name=$1 ppid=$2
    shift 2
    log "load: $name"
    run_load "$name" "h1 keep-alive" "$ppid" "$@"
    run_load "$name" "h1 new conn" "$ppid" --disable-keepalive "$@"
    run_load "$name" "h2 keep-alive (-p $H2_PARALLEL)" "$ppid" --http2 -p "$H2_PARALLEL" "$@"
}

NOTES=()
if [ "$SOLO" = setsid ]; then
    NOTES+=("nginx, oha and each proxy ran in a session of its own (scheduling group; ISOLATE=0 to share this script's)")
else
    NOTES+=("nginx, oha and the proxies ran in the script's session (ISOLATE=0): one scheduling group")
fi
want() { [[ " $PEERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- direct
if want direct; then
    run_peer direct - --cacert "$WORK/origin-ca.pem" --connect-to "$HOST:$NGINX_PORT:127.0.0.1:$NGINX_PORT"
fi

# ---------------------------------------------------------------- egress-proxy
EGRESS_IDLE=- EGRESS_IDLE_ANON=- EGRESS_AFTER=- EGRESS_HWM=-
if want egress; then
    mkdir -p egress
    egress_config "$WORK/egress" "127.0.0.1:0" "${EGRESS_AUDIT:-$WORK/egress/audit.jsonl}" "$HOST" "$NGINX_PORT" "$WORK/origin-ca.pem"
    # TOKIO_WORKER_THREADS only when asked: unset, tokio uses one worker per core.
    $SOLO env ${EGRESS_WORKERS:+TOKIO_WORKER_THREADS=$EGRESS_WORKERS} RUST_LOG="${EGRESS_RUST_LOG:-info}" "$EGRESS_BIN" run --config "$WORK/egress/config.toml" \
        >/dev/null 2>"$WORK/egress/stderr.log" &
    EPID=$!
    PIDS+=("$EPID")
    EPORT=$(egress_port egress/stderr.log)
    if [ -z "$EPORT" ]; then
        log "egress-proxy did not start:"; cat egress/stderr.log >&2
        NOTES+=("egress-proxy did not start")
    else
        sleep 1
        EGRESS_IDLE=$(rss_kb "$EPID")
        EGRESS_IDLE_ANON=$(awk '/^RssAnon/ {print $2}' "/proc/$EPID/status")
        EGRESS_ARGS=(--no-pre-lookup -x "http://127.0.0.1:$EPORT" --cacert "$WORK/egress/ca.pem")
        run_peer egress-proxy "$EPID" "${EGRESS_ARGS[@]}"
        EGRESS_AFTER=$(rss_kb "$EPID")
        EGRESS_HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$EPID/status")
        if [ -f egress/audit.jsonl ]; then
            NOTES+=("egress-proxy wrote $(wc -l <egress/audit.jsonl) audit lines ($(du -h egress/audit.jsonl | cut -f1)) during the run")
        fi
        # Kept for the alternating keep-alive rounds after Squid's run; idle until then.
        [ "$KA_ROUNDS" -gt 1 ] && want squid || { kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; }
    fi
fi

# ---------------------------------------------------------------- squid-openssl (ssl-bump)
SQUID_RSS=-
if want squid; then
    if [ "$HAVE_SQUID" = 1 ]; then
        mkdir -p squid
        mkcert squid/ca "squid bench CA"
        echo "127.0.0.1 $HOST" >squid/hosts
        SQUID_PORT=$(free_port)
        /usr/lib/squid/security_file_certgen -c -s "$WORK/squid/ssl_db" -M 4MB >/dev/null
        cat >squid/squid.conf <<EOF
http_port 127.0.0.1:$SQUID_PORT ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=4MB tls-cert=$WORK/squid/ca.pem tls-key=$WORK/squid/ca.key
sslcrtd_program /usr/lib/squid/security_file_certgen -s $WORK/squid/ssl_db -M 4MB
sslcrtd_children 5 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$WORK/origin-ca.pem
http_access allow all
hosts_file $WORK/squid/hosts
cache deny all
cache_mem 8 MB
access_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid/squid.pid
coredump_dir $WORK/squid
shutdown_lifetime 1 seconds
max_filedescriptors 8192
EOF
        chown -R proxy:proxy squid 2>/dev/null || true
        $SOLO /usr/sbin/squid -N -f "$WORK/squid/squid.conf" >"$WORK/squid/stdout.log" 2>&1 &
        SPID=$!
        PIDS+=("$SPID")
        if wait_port "$SQUID_PORT"; then
            sleep 1
            SQUID_ARGS=(--no-pre-lookup -x "http://127.0.0.1:$SQUID_PORT" --cacert "$WORK/squid/ca.pem")
            run_peer squid-openssl "$SPID" "${SQUID_ARGS[@]}"
            SQUID_RSS=$(rss_tree_kb "$SPID")
            # More keep-alive rounds, the two proxies alternating (the order too), so that a
            # minute of a noisy neighbour on this shared VM does not decide the ratio.
            if [ "$KA_ROUNDS" -gt 1 ] && [ -n "${EGRESS_ARGS+x}" ] && kill -0 "$EPID" 2>/dev/null; then
                log "load: $((KA_ROUNDS - 1)) more h1 keep-alive rounds, egress-proxy and squid-openssl alternating"
                for k in $(seq 2 "$KA_ROUNDS"); do
                    if [ $((k % 2)) = 0 ]; then
                        run_load squid-openssl "h1 keep-alive, round $k" "$SPID" "${SQUID_ARGS[@]}"
                        run_load egress-proxy "h1 keep-alive, round $k" "$EPID" "${EGRESS_ARGS[@]}"
                    else
                        run_load egress-proxy "h1 keep-alive, round $k" "$EPID" "${EGRESS_ARGS[@]}"
                        run_load squid-openssl "h1 keep-alive, round $k" "$SPID" "${SQUID_ARGS[@]}"
                    fi
                done
            fi
        else
            WHY_SQUID="squid did not start: $(tail -2 squid/cache.log squid/stdout.log 2>/dev/null | tr '\n' ' ')"
        fi
        kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true
    fi
    [ -z "$WHY_SQUID" ] || { log "skipping squid: $WHY_SQUID"; NOTES+=("squid-openssl skipped: $WHY_SQUID"); }
fi
if [ -n "${EPID:-}" ]; then kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; fi

# ---------------------------------------------------------------- mitmproxy
MITM_RSS=-
if want mitm; then
    if [ "$HAVE_MITM" = 1 ]; then
        mkdir -p mitm
        MITM_PORT=$(free_port)
        # mitmproxy has no hosts override: pin bench.test to 127.0.0.1 when it dials upstream
        # (SNI and certificate verification still use the name).
        cat >mitm/pin.py <<EOF
class Pin:
    def server_connect(self, data):
        if data.server.address and data.server.address[0] == "$HOST":
            data.server.address = ("127.0.0.1", data.server.address[1])
addons = [Pin()]
EOF
        $SOLO "$MITM_VENV/bin/mitmdump" -q --listen-host 127.0.0.1 -p "$MITM_PORT" \
            --set confdir="$WORK/mitm" --set ssl_verify_upstream_trusted_ca="$WORK/origin-ca.pem" \
            --set flow_detail=0 -s "$WORK/mitm/pin.py" >"$WORK/mitm/stdout.log" 2>&1 &
        MPID=$!
        PIDS+=("$MPID")
        if wait_port "$MITM_PORT"; then
            sleep 1
            run_peer mitmproxy "$MPID" --no-pre-lookup -x "http://127.0.0.1:$MITM_PORT" --cacert "$WORK/mitm/mitmproxy-ca-cert.pem"
            MITM_RSS=$(rss_tree_kb "$MPID")
        else
            WHY_MITM="mitmdump did not start: $(tail -2 mitm/stdout.log | tr '\n' ' ')"
        fi
        kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true
    fi
    [ -z "$WHY_MITM" ] || { log "skipping mitmproxy: $WHY_MITM"; NOTES+=("mitmproxy skipped: $WHY_MITM"); }
fi

# ---------------------------------------------------------------- leaf issuance (criterion)
CRIT=$WORK/criterion.txt
: >"$CRIT"
if [ -z "${SKIP_CRITERION:-}" ]; then
    log "cargo bench -p benches --bench certs"
    (cd "$ROOT" && cargo bench -q -p benches --bench certs -- --warm-up-time 1 --measurement-time 3) \
        >"$CRIT" 2>"$WORK/criterion.err" || { log "criterion bench failed"; tail -5 "$WORK/criterion.err" >&2; }
fi

# ---------------------------------------------------------------- report
mkdir -p "$(dirname "$OUT")"
cp "$ROWS" "${OUT%.md}.tsv"  # raw rows, kept even if the report step fails
python3 - "$ROWS" "$CRIT" "$EGRESS_IDLE" "$EGRESS_IDLE_ANON" "$EGRESS_AFTER" "$EGRESS_HWM" "$SQUID_RSS" "$MITM_RSS" \
    "$DURATION" "$WARMUP" "$CONC" "$FILE_BYTES" "$LOAD_START" "$(uptime | sed 's/.*load average: //')" "${NOTES[@]+"${NOTES[@]}"}" >"$WORK/report.md" <<'PY'
import re, statistics, sys
rows_path, crit_path, e_idle, e_anon, e_after, e_hwm, s_rss, m_rss, dur, warm, conc, fbytes, load0, load, *notes = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(rows_path) if l.strip()]
out = []
p = out.append
p(f"Load: `oha -z {dur} -c {conc}` per row (after a {warm} warm-up at the same concurrency), GET of a {fbytes}-byte static file from nginx over TLS;")
p(f"every proxy intercepts (bumps) the tunnel. Load average (1, 5, 15 min) at start: {load0}; at the end: {load}.")
p("")
p("| target | mode | req/s | p50 ms | p99 ms | 200 / total | upstream conns | proxy CPU µs/req |")
p("|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    p("| " + " | ".join(r) + " |")
p("")
def num(v):
    try:
        return float(v)
    except ValueError:
        return 0.0
squid = {r[1]: num(r[2]) for r in rows if r[0] == "squid-openssl"}
eg = {r[1]: num(r[2]) for r in rows if r[0] == "egress-proxy"}
def mb(kb):
    return "-" if kb in ("-", "", "0") else f"{int(kb) / 1024:.1f} MB"
if squid and eg:
    p("| target (issue 2) | egress-proxy / squid-openssl | goal | met |")
    p("|---|---:|---:|---|")
    # Keep-alive: every round where both proxies ran; the verdict is the median ratio.
    ka = [eg[m] / squid[m] for m in squid
          if (m == "h1 keep-alive" or m.startswith("h1 keep-alive, round")) and m in eg and squid[m] > 0]
    if ka:
        med = statistics.median(ka)
        each = f" (median of {len(ka)} rounds: {', '.join(f'{r:.2f}' for r in ka)})" if len(ka) > 1 else ""
        p(f"| h1 keep-alive req/s | {med:.2f}×{each} | ≥ 2× | {'yes' if med >= 2.0 else 'NO'} |")
    for mode, goal in (("h1 new conn", 5.0),):
        if mode in squid and mode in eg and squid[mode] > 0:
            ratio = eg[mode] / squid[mode]
            p(f"| {mode} req/s | {ratio:.2f}× | ≥ {goal:g}× | {'yes' if ratio >= goal else 'NO'} |")
    idle_met = e_idle not in ("-", "") and int(e_idle) <= 15 * 1024
    p(f"| idle RSS | {mb(e_idle)} | ≤ 15 MB | {'yes' if idle_met else 'NO'} |")
    p("")
p("| memory (VmRSS) | value |")
p("|---|---:|")
p(f"| egress-proxy idle (after start, before traffic) | {mb(e_idle)} |")
p(f"| egress-proxy idle, anonymous part (RssAnon: heap, stacks) | {mb(e_anon)} |")
p(f"| egress-proxy after the load | {mb(e_after)} |")
p(f"| egress-proxy peak (VmHWM) | {mb(e_hwm)} |")
p(f"| squid-openssl after the load (with certgen helpers) | {mb(s_rss)} |")
p(f"| mitmproxy after the load | {mb(m_rss)} |")
p("")
crit = open(crit_path).read()
found = re.findall(r"^(leaf/\S+)\s+time:\s+\[([^\]]+)\]", crit, re.M)
if found:
    p("| leaf issuance (criterion, `certs` bench) | low | estimate | high |")
    p("|---|---:|---:|---:|")
    for name, t in found:
        parts = t.split()
        vals = [" ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
        p(f"| {name} | " + " | ".join(vals) + " |")
    p("")
p("Columns: *upstream conns* = TLS connections nginx accepted during the measured run (pooling shows")
p("as a small number); *proxy CPU* = user+system CPU time of the proxy process (and its children)")
p("divided by the requests it served. oha, nginx and the proxy share the machine's cores.")
for n in notes:
    p(f"- {n}")
print("\n".join(out))
PY
mkdir -p "$(dirname "$OUT")"
{
    echo "# proxy_load.sh results"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
        "· $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) · egress-proxy $EGRESS_REV"
    echo
    cat "$WORK/report.md"
} | tee "$OUT"
