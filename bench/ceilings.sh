#!/usr/bin/env bash
# The machine ceiling that bounds the broker's produce throughput here: buffered
# writes of new data into the page cache. This VM reports freed memory back to the
# host (kernel "Free page reporting enabled", page_reporting_order=11) and runs a
# DAMON pageout scheme, so a page the guest has not used for a few seconds must be
# faulted in from the host again. A broker writing a log writes into new page-cache
# pages; the mock cluster keeps 5 MiB per partition in memory it reuses.
#
# Writes 1 GiB in 128 KiB writes (about one produce request's size per partition in
# scenario 2) into a new file in the directory given (default: a temp dir on the
# same file system as /tmp): after a pause, then again at once after deleting the
# first file (the freed pages are reused), then over the same file (no new pages).
set -euo pipefail
dir="$(mktemp -d "${1:-/tmp}/ceilings.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
rate() { dd if=/dev/zero of="$1" bs=128k count=8192 "${@:2}" 2>&1 | tail -n 1 | sed 's/.*, //'; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in 1 2 3; do
    sleep 10
    a="$(rate "$dir/f")"
    rm -f "$dir/f"
    b="$(rate "$dir/f")"
    c="$(rate "$dir/f" conv=notrunc)"
    rm -f "$dir/f"
    echo "round $i: new file after 10 s pause $a | new file right after deleting one $b | overwrite in place $c"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
