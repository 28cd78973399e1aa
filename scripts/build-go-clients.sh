#!/usr/bin/env bash
# Builds the Go programs of the interop suite (tests/interop/go/src/rivulet/*) against
# Debian's Go Kafka clients, in GOPATH mode: the Go module proxy is not reachable here,
# and Debian installs the sources under /usr/share/gocode. Binaries go to
# target/go/bin, Go's build cache to target/go/cache, so a second run takes a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/go/bin"
mkdir -p "$OUT"
export GO111MODULE=off
export GOPATH="$ROOT/tests/interop/go:/usr/share/gocode"
export GOCACHE="$ROOT/target/go/cache"
for dir in "$ROOT"/tests/interop/go/src/rivulet/*/; do
    name="$(basename "$dir")"
    # cgo warnings from Debian's DataDog/zstd (deprecated zstd calls) are not ours.
    go build -o "$OUT/$name" "rivulet/$name" 2> >(grep -v -e 'deprecated' -e 'note: declared here' -e '^ ' -e 'cgo-gcc-prolog' -e '^In file included' -e 'DataDog/zstd' >&2)
done
echo "[build-go-clients] built $(ls "$OUT" | tr '\n' ' ')in $OUT" >&2
