#!/usr/bin/env bash
# Coverage-guided fuzzing of the client_hello target on a *stable* toolchain.
#
# cargo-fuzz wants nightly only for its sanitizers (-Zsanitizer=address). Rust code needs no
# ASan for memory safety (the parser has no unsafe), and SanitizerCoverage is driven by
# stable codegen flags, so this gives libFuzzer the same coverage feedback cargo-fuzz would.
# `--target` keeps the flags off build scripts and proc-macros, as cargo-fuzz does.
#
# usage: fuzz/run-stable.sh [SECONDS]   (default 60; the first run fetches libfuzzer-sys)
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")"
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$host" --bin client_hello
mkdir -p corpus/client_hello artifacts/client_hello
# max_len: a real ClientHello is a few KiB; 20000 also covers multi-record reassembly.
exec "target/$host/release/client_hello" -max_total_time="$secs" -max_len=20000 \
  -artifact_prefix=artifacts/client_hello/ corpus/client_hello
