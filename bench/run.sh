#!/usr/bin/env bash
# Builds the broker (release) and the benchmark, starts the broker on a free
# loopback port with a fresh data directory, runs every scenario against
# librdkafka's mock cluster and against the broker, prints the table, and stops
# the broker. Extra arguments go to the benchmark (see `bench/README.md`), e.g.
#   bench/run.sh --scenarios 1,2 --runs 3
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$bench_dir")"
jobs="${CARGO_BUILD_JOBS:-2}"

echo "== building the broker (release)" >&2
(cd "$root" && cargo build --release -p rivulet-cli -j "$jobs")
echo "== building the benchmark (release; the first build compiles librdkafka)" >&2
(cd "$bench_dir" && cargo build --release -j "$jobs")

work="$(mktemp -d -t rivulet-bench.XXXXXX)"
# A private copy, so a concurrent rebuild of target/ cannot swap the binary mid-run.
cp "$root/target/release/rivulet" "$work/rivulet"
mkdir "$work/data"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill "$broker_pid"
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting rivulet on 127.0.0.1:$port, data in $work/data" >&2
RUST_LOG="${RUST_LOG:-warn}" "$work/rivulet" serve \
    --override node.id=1 \
    --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$work/data" \
    >"$work/broker.log" 2>&1 &
broker_pid=$!

for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
        echo "the broker exited at start-up:" >&2
        cat "$work/broker.log" >&2
        exit 1
    fi
    sleep 0.1
done

# On a shared machine: BENCH_WAIT_LOAD=1.5 waits (up to 30 minutes) for the
# 1-minute load average to fall below 1.5 before measuring.
if [[ -n "${BENCH_WAIT_LOAD:-}" ]]; then
    for _ in $(seq 1 180); do
        awk -v max="$BENCH_WAIT_LOAD" '{ exit !($1 < max) }' /proc/loadavg && break
        sleep 10
    done
fi
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
"$bench_dir/target/release/rivulet-bench" --broker "127.0.0.1:$port" --broker-pid "$broker_pid" "$@" || status=$?
if [[ -s "$work/broker.log" ]]; then
    echo "== broker log (warnings and errors)" >&2
    tail -n 20 "$work/broker.log" >&2
fi
exit "$status"
