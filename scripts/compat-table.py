#!/usr/bin/env python3
"""Puts the client compatibility table of the last interop run into README.md.

The interop suite (tests/interop/conftest.py) writes target/interop-compat.md: one
row per client, version and protocol level that a test in test_old_clients.py ran,
with its result. This script replaces the README's table between the
`<!-- compat-table:start -->` and `<!-- compat-table:end -->` markers with it.

    ./scripts/test.sh                 # or: PYTEST_ARGS="-k old_clients" ./scripts/test.sh
    scripts/compat-table.py           # then review and commit README.md
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE = ROOT / "target" / "interop-compat.md"
README = ROOT / "README.md"
START, END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"


def main() -> int:
    if not TABLE.is_file():
        print(f"{TABLE} not found: run the interop suite first", file=sys.stderr)
        return 1
    table = TABLE.read_text()
    if "| FAIL |" in table:
        print("the last run has failures; not updating the README", file=sys.stderr)
        return 1
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"README.md lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}{END}{tail}")
    print(f"README.md: {table.count(chr(10)) - 2} rows from {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
