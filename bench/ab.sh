#!/usr/bin/env bash
# A/B benchmark of two brokers in one run: both start side by side (each its own
# port and fresh data directory), then rounds alternate A, B, A, B... so that the
# neighbours' load hits both; the summary gives each round's figures, the medians
# of the warm runs per side and the ratio B/A. See bench/README.md ("A/B runs").
#
#   A_BIN=path B_BIN=path [A_OVERRIDES="k=v ..."] [B_OVERRIDES="k=v ..."] \
#   [ROUNDS=3] [WORKLOAD=bench|producers] [STRACE=1] bench/ab.sh [rivulet-bench args]
#
# WORKLOAD=bench (default) runs bench/target/release/rivulet-bench (or $BENCH_BIN)
# once per round and side with the extra arguments, e.g. `--scenarios 1,2,3 --runs 1`.
# WORKLOAD=producers starts PRODUCERS (default 8) `rivulet perf produce` processes
# at once, each sending RECORDS (default 20000) records of RECORD_SIZE (1024) bytes
# with acks=all to one 6-partition topic, and times them from the first start to
# the last exit.
# STRACE=1 runs both brokers under `strace -f --seccomp-bpf -e trace=fsync,fdatasync`
# (only those calls stop the process) and reports fsyncs per second of each round.
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
: "${A_BIN:?A_BIN: the broker binary of side A}"
: "${B_BIN:?B_BIN: the broker binary of side B}"
rounds="${ROUNDS:-3}"
workload="${WORKLOAD:-bench}"
bench_bin="${BENCH_BIN:-$bench_dir/target/release/rivulet-bench}"

work="$(mktemp -d -t rivulet-ab.XXXXXX)"
declare -A pid port child
cleanup() {
    for side in A B; do
        if [[ -n "${pid[$side]:-}" ]] && kill -0 "${pid[$side]}" 2>/dev/null; then
            kill "${pid[$side]}"
        fi
        # The shell's own child: the broker, or strace, which exits after it.
        if [[ -n "${child[$side]:-}" ]]; then wait "${child[$side]}" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local side="$1" bin="$2" overrides="$3"
    mkdir -p "$work/$side/data"
    # Private copies, so a rebuild cannot swap a binary mid-run.
    cp "$bin" "$work/$side/rivulet"
    port[$side]="$(free_port)"
    local args=(serve --override node.id=1 --override "listeners=PLAINTEXT://127.0.0.1:${port[$side]}"
        --override "log.dirs=$work/$side/data")
    for kv in $overrides; do args+=(--override "$kv"); done
    local run=("$work/$side/rivulet" "${args[@]}")
    if [[ -n "${STRACE:-}" ]]; then
        run=(strace -f --seccomp-bpf -e trace=fsync,fdatasync -ttt -o "$work/$side/strace" "${run[@]}")
    fi
    RUST_LOG="${RUST_LOG:-warn}" "${run[@]}" >"$work/$side/broker.log" 2>&1 &
    pid[$side]=$!
    child[$side]=$!
    for _ in $(seq 1 100); do
        if (echo >"/dev/tcp/127.0.0.1/${port[$side]}") 2>/dev/null; then
            # Under strace: the broker is strace's child (its CPU is the one to report,
            # and strace does not stop it when it is stopped).
            if [[ -n "${STRACE:-}" ]]; then pid[$side]="$(pgrep -P "${pid[$side]}")"; fi
            return
        fi
        sleep 0.1
    done
    echo "broker $side did not start:" >&2
    cat "$work/$side/broker.log" >&2
    exit 1
}

start A "$A_BIN" "${A_OVERRIDES:-}"
start B "$B_BIN" "${B_OVERRIDES:-}"
echo "== A: $A_BIN ${A_OVERRIDES:-} on ${port[A]}; B: $B_BIN ${B_OVERRIDES:-} on ${port[B]}"

producers_round() {
    local side="$1" bootstrap="127.0.0.1:${port[$1]}" n="${PRODUCERS:-8}"
    local topic="ab-$round"
    "$work/$side/rivulet" topics -b "$bootstrap" create "$topic" -p 6 >/dev/null
    local t0 t1 pids=()
    t0="$(date +%s.%N)"
    for i in $(seq 1 "$n"); do
        "$work/$side/rivulet" perf -b "$bootstrap" produce --topic "$topic" \
            --num-records "${RECORDS:-20000}" --record-size "${RECORD_SIZE:-1024}" \
            --producer-props acks=all linger.ms=5 >"$work/$side/perf-$round-$i.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    t1="$(date +%s.%N)"
    if [[ "$failed" == 1 ]]; then
        echo "a producer failed:" >&2
        cat "$work/$side"/perf-"$round"-*.log >&2
        exit 1
    fi
    python3 -c "import sys; n, r, s, t0, t1 = map(float, sys.argv[1:]); \
print(f'producers {int(n)} x {int(r)} records of {int(s)} B: {n*r/(t1-t0):.0f} rec/s {n*r*s/(t1-t0)/1e6:.1f} MB/s in {t1-t0:.2f} s')" \
        "$n" "${RECORDS:-20000}" "${RECORD_SIZE:-1024}" "$t0" "$t1"
}

fsyncs() {
    local side="$1" t0="$2" t1="$3"
    [[ -n "${STRACE:-}" ]] || return 0
    awk -v t0="$t0" -v t1="$t1" '$2 >= t0 && $2 <= t1 && /fdatasync|fsync/ && !/resumed/ { n++ }
        END { printf "fsyncs %d, %.0f/s\n", n, n / (t1 - t0) }' "$work/$side/strace"
}

for round in $(seq 1 "$rounds"); do
    for side in A B; do
        echo "== round $round side $side $(date -u '+%H:%M:%S UTC') load $(cut -d' ' -f1-3 /proc/loadavg)"
        t0="$(date +%s.%N)"
        if [[ "$workload" == producers ]]; then
            producers_round "$side"
        else
            "$bench_bin" --targets broker --broker "127.0.0.1:${port[$side]}" --broker-pid "${pid[$side]}" "$@" \
                | grep -E '^  [0-9] +rivulet|^ +\(scenario 3'
        fi
        fsyncs "$side" "$t0" "$(date +%s.%N)"
    done
done | tee "$work/out"

# Medians of the warm runs per side, their ratio B/A, and the per-round ratios.
python3 - "$work/out" <<'PY'
import re, statistics as st, sys
rows, side, rnd = {}, None, None
for line in open(sys.argv[1]):
    if m := re.match(r"== round (\d+) side (\w)", line):
        rnd, side = int(m[1]), m[2]
    elif m := re.match(r"\s+(\d)\s+rivulet\s+warm\s+(\d+) rec/s\s+([\d.]+) MB/s.*broker ([\d.]+)", line):
        rows.setdefault((f"scenario {m[1]}", side), []).append((rnd, float(m[2]), float(m[3]), float(m[4])))
    elif m := re.match(r"producers .*: (\d+) rec/s ([\d.]+) MB/s", line):
        rows.setdefault(("producers", side), []).append((rnd, float(m[1]), float(m[2]), 0.0))
print("== medians of warm runs: records/s (MB/s, broker CPU-s); ratio B/A; per-round ratios")
for what in sorted({k[0] for k in rows}):
    a, b = rows.get((what, "A"), []), rows.get((what, "B"), [])
    if not a or not b:
        continue
    med = lambda xs, i: st.median(x[i] for x in xs)
    per = " ".join(f"{y[1] / x[1]:.2f}" for x, y in zip(a, b))
    print(f"{what}: A {med(a, 1):.0f} ({med(a, 2):.1f} MB/s, {med(a, 3):.2f}) "
          f"B {med(b, 1):.0f} ({med(b, 2):.1f} MB/s, {med(b, 3):.2f}) ratio {med(b, 1) / med(a, 1):.3f}; rounds {per}")
PY
for side in A B; do
    if [[ -s "$work/$side/broker.log" ]]; then
        echo "== broker $side log (warnings and errors)"
        tail -n 5 "$work/$side/broker.log"
    fi
done
