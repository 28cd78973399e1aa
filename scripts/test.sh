#!/usr/bin/env bash
# The one command that runs Rivulet's whole test suite on a fresh machine:
#   1. install test dependencies (kcat, .venv with pinned Python clients, kafkajs)
#   2. cargo fmt --check, cargo build --workspace --all-targets, cargo clippy -D warnings
#   3. cargo tests (nextest when installed)
#   4. interop tests: real Kafka clients against target/debug/rivulet (pytest), the Go
#      ones built first by scripts/build-go-clients.sh
# Exits non-zero if any step fails. Environment knobs:
#   RIVULET_BIN            broker binary for the interop tests (default target/debug/rivulet)
#   RIVULET_TEST_JOBS      cargo build/test parallelism (default 2)
#   INTEROP_TIMEOUT        per-test timeout in seconds for pytest (default 120)
#   PYTEST_ARGS            extra pytest arguments (e.g. "-k produce -x")
#   SKIP_CARGO=1           skip steps 2-3 (interop only, with an already built binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JOBS="${RIVULET_TEST_JOBS:-2}"
INTEROP_TIMEOUT="${INTEROP_TIMEOUT:-120}"
declare -a SUMMARY=()
START_ALL=$SECONDS

step() { printf '\n==== %s\n' "$*"; }
record() { SUMMARY+=("$(printf '%-28s %-6s %4ss' "$1" "$2" "$3")"); }
print_summary() {
    printf '\n==== summary (%ss total)\n' "$((SECONDS - START_ALL))"
    local line
    for line in "${SUMMARY[@]}"; do printf '  %s\n' "$line"; done
}

# run_step NAME CMD...: runs CMD, records PASS/FAIL and its duration, exits on failure.
run_step() {
    local name="$1"; shift
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "$name" PASS "$((SECONDS - t0))"
    else
        record "$name" "FAIL($rc)" "$((SECONDS - t0))"
        print_summary
        echo "FAILED: $name (exit code $rc)" >&2
        exit "$rc"
    fi
}

cargo_doctests() {
    local out rc=0
    out="$(cargo test --workspace --doc "${LOCKED[@]}" -j "$JOBS" 2>&1)" || rc=$?
    printf '%s\n' "$out" | tail -n 40
    # a workspace without any library target has no doctests: not an error
    if [ "$rc" -ne 0 ] && printf '%s' "$out" | grep -q "no library targets found"; then
        return 0
    fi
    return "$rc"
}

step "install test dependencies"
run_step "install-test-deps" bash scripts/install-test-deps.sh

if [ "${SKIP_CARGO:-0}" != "1" ]; then
    if [ ! -f Cargo.toml ]; then
        echo "no Cargo.toml at $ROOT: nothing to build" >&2
        record "cargo build" "FAIL" 0
        print_summary
        exit 1
    fi
    LOCKED=()
    if [ -f Cargo.lock ]; then LOCKED=(--locked); fi

    # STYLE.md: cargo fmt. A machine without rustfmt says so in the summary.
    if cargo fmt --version >/dev/null 2>&1; then
        step "cargo fmt --all -- --check"
        run_step "cargo fmt" cargo fmt --all -- --check
    else
        record "cargo fmt" "SKIP" 0
        echo "rustfmt is not installed: formatting not checked (rustup component add rustfmt)" >&2
    fi

    step "cargo build --workspace --all-targets ${LOCKED[*]}"
    run_step "cargo build" cargo build --workspace --all-targets "${LOCKED[@]}" -j "$JOBS"

    # The rivulet-client driver the interop suite runs (its own workspace, so not part of
    # the build above). Built here rather than inside a test, where a busy machine's
    # compile time ran into the per-test timeout.
    step "cargo build bench/transactions/client-driver"
    run_step "client driver build" env CARGO_TARGET_DIR="$ROOT/target" \
        cargo build --manifest-path bench/transactions/client-driver/Cargo.toml "${LOCKED[@]}" -j "$JOBS"

    # STYLE.md: clippy -D warnings. A machine without clippy says so in the summary.
    if cargo clippy --version >/dev/null 2>&1; then
        step "cargo clippy --workspace --all-targets -- -D warnings"
        run_step "cargo clippy" cargo clippy --workspace --all-targets "${LOCKED[@]}" -j "$JOBS" -- -D warnings
    else
        record "cargo clippy" "SKIP" 0
        echo "clippy is not installed: lints not checked (rustup component add clippy)" >&2
    fi

    if cargo nextest --version >/dev/null 2>&1; then
        step "cargo nextest run --workspace"
        # --no-tests=pass: a workspace without tests yet must not fail the run
        run_step "cargo nextest" cargo nextest run --workspace "${LOCKED[@]}" --build-jobs "$JOBS" \
            --test-threads "$JOBS" --no-tests=pass
        # nextest does not run doctests
        step "cargo test --doc"
        run_step "cargo doctests" cargo_doctests
    else
        step "cargo test --workspace"
        run_step "cargo test" cargo test --workspace "${LOCKED[@]}" -j "$JOBS" -- --test-threads "$JOBS"
    fi
fi

# The Go programs of the interop suite (Debian's Go clients, GOPATH mode; cached in
# target/go, so only the first run compiles).
step "build Go interop clients"
run_step "go clients build" bash scripts/build-go-clients.sh

step "interop tests (pytest tests/interop)"
BIN="${RIVULET_BIN:-$ROOT/target/debug/rivulet}"
if [ ! -x "$BIN" ]; then
    echo "Rivulet binary not found at $BIN (build failed to produce it? set RIVULET_BIN)" >&2
    record "interop (pytest)" "FAIL" 0
    print_summary
    exit 1
fi
export RIVULET_BIN="$BIN"
DRIVER="$ROOT/target/debug/rivulet-client-txn-driver"
if [ -z "${RIVULET_CLIENT_DRIVER:-}" ] && [ -x "$DRIVER" ]; then
    export RIVULET_CLIENT_DRIVER="$DRIVER"
fi
# shellcheck disable=SC2086
run_step "interop (pytest)" "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/interop" \
    --timeout "$INTEROP_TIMEOUT" -p no:cacheprovider ${PYTEST_ARGS:-}

print_summary
echo "ALL TESTS PASSED"
