#!/usr/bin/env bash
# Consecutive keep-alive rounds on one egress-proxy process, to see how a proxy's speed moves
# from round to round and after its start: nginx (TLS, h1+h2) is started once; then, SETS times,
# a fresh egress-proxy is started, warmed up, and measured for ROUNDS rounds of DURATION each.
# One line per round: req/s, the proxy's CPU per request (user/system), and with PSTAT=1 its
# system calls and context switches per request (perf tracepoints; no hardware counters needed).
#
# proxy_load.sh is the side-by-side comparison; this is the tool behind its warm-up choice
# (docs/PERFORMANCE.md, run 24). Everything listens on 127.0.0.1; every process is killed on exit.
#
# Usage: benches/proxy_rounds.sh
# Env:   SETS=3 ROUNDS=3 DURATION=10s (whole seconds) CONC=16 WARMUP="-n 2000" (oha arguments: "-z 10s" for a time)
#        EGRESS_BIN=path  EGRESS_AUDIT=path (default: a file in the work dir)  PSTAT=1
set -euo pipefail

SETS=${SETS:-3}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
# Whole seconds: PSTAT's counting window and the per-request figures are derived from it.
[[ $DURATION =~ ^[0-9]+s$ ]] || { echo "proxy_rounds: DURATION must be whole seconds (e.g. 10s)" >&2; exit 2; }
CONC=${CONC:-16}
WARMUP=${WARMUP:-"-n 2000"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EGRESS_BIN=${EGRESS_BIN:-$ROOT/target/release/egress-proxy}
HOST=bench.test

. "$ROOT/benches/lib.sh"
work_dir proxy-rounds
trap 'exit 130' INT TERM
command -v oha >/dev/null || { echo "proxy_rounds: oha is required (cargo install oha --locked)" >&2; exit 1; }
[ -x "$EGRESS_BIN" ] || { echo "proxy_rounds: build first: cargo build --release -p egress-proxy" >&2; exit 1; }

cd "$WORK"
origin_certs "$HOST"
NGINX_PORT=$(free_port)
mkdir -p www
head -c 1024 /dev/zero | tr '\0' a >www/hello.txt
nginx_conf 4096 <<EOF
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        ssl_certificate $WORK/origin.pem;
        ssl_certificate_key $WORK/origin.key;
        root $WORK/www;
    }
EOF
# Each in a session of its own, as proxy_load.sh does (see SOLO there).
setsid /usr/sbin/nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" 2>>"$WORK/nginx-error.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" || { cat "$WORK/nginx-error.log" >&2; exit 1; }
URL="https://$HOST:$NGINX_PORT/hello.txt"

# utime, stime (clock ticks) of a process
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

for set in $(seq "$SETS"); do
    rm -rf egress && mkdir egress
    egress_config "$WORK/egress" "127.0.0.1:0" "${EGRESS_AUDIT:-$WORK/egress/audit.jsonl}" "$HOST" "$NGINX_PORT" "$WORK/origin-ca.pem"
    setsid env RUST_LOG=info "$EGRESS_BIN" run --config "$WORK/egress/config.toml" >/dev/null 2>egress/stderr.log &
    EPID=$!
    PIDS+=("$EPID")
    EPORT=$(egress_port egress/stderr.log)
    [ -n "$EPORT" ] || { cat egress/stderr.log >&2; exit 1; }
    ARGS=(--no-pre-lookup -x "http://127.0.0.1:$EPORT" --cacert "$WORK/egress/ca.pem")
    # shellcheck disable=SC2086 # WARMUP is a list of oha arguments
    setsid oha --no-tui $WARMUP -c "$CONC" "${ARGS[@]}" "$URL" --output-format quiet >/dev/null 2>&1 || true
    for round in $(seq "$ROUNDS"); do
        read -r u0 s0 < <(ticks "$EPID")
        stat_pid=""
        if [ -n "${PSTAT:-}" ]; then
            # Stops before oha does, so it counts load only.
            perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$EPID" -o "$WORK/pstat" \
                -- sleep "$(( ${DURATION%s} - 1 ))" >/dev/null 2>&1 &
            stat_pid=$!
        fi
        setsid oha --no-tui -z "$DURATION" -c "$CONC" "${ARGS[@]}" "$URL" --output-format json -o "$WORK/oha.json" \
            >"$WORK/oha.err" 2>&1 || { cat "$WORK/oha.err" >&2; exit 1; }
        read -r u1 s1 < <(ticks "$EPID")
        [ -z "$stat_pid" ] || wait "$stat_pid" || true
        python3 - "$WORK/oha.json" "$((u1 - u0))" "$((s1 - s0))" "$HZ" "$set" "$round" "${stat_pid:+$WORK/pstat}" "${DURATION%s}" <<'PY'
import json, sys
path, u, s, hz, set_, round_, pstat, dur = sys.argv[1:]
d = json.load(open(path))
n = sum(d["statusCodeDistribution"].values())
rps = d["summary"]["requestsPerSec"]
us = lambda t: int(t) / int(hz) * 1e6 / n
line = f"set {set_} round {round_}: {rps:7.0f} req/s  proxy CPU {us(u) + us(s):5.1f} µs/req (user {us(u):4.1f}, system {us(s):4.1f})"
if pstat:
    counts = {}
    for row in open(pstat):
        f = row.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            counts[f[2]] = int(f[0])
    # perf counted for dur - 1 seconds of the round: per request at the round's rate.
    reqs = rps * (int(dur) - 1)
    line += "  syscalls/req {:.2f}  context switches/req {:.2f}".format(
        counts.get("raw_syscalls:sys_enter", 0) / reqs, counts.get("context-switches", 0) / reqs)
print(line, flush=True)
PY
    done
    kill "$EPID" 2>/dev/null || true
    wait "$EPID" 2>/dev/null || true
done
