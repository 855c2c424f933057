#!/bin/sh
# Pipe and Process: mproc (criterion, benches/pipe.rs) beside Python's
# multiprocessing Pipe / Process and raw unix sockets, in one invocation.
# Python runs before and after the Rust benchmark so that machine noise shows.
# Usage: crates/mproc/benches/py/compare.sh [python rounds]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
rounds=${1:-3}
echo "== python (before) =="
python3 "$here/pipe_bench.py" "$rounds"
echo "== mproc (cargo bench -p mproc --bench pipe) =="
(cd "$root" && cargo bench -q -p mproc --bench pipe 2>&1 | grep -E '^[A-Za-z0-9_]+/|time:|thrpt:')
echo "== python (after) =="
python3 "$here/pipe_bench.py" "$rounds"
