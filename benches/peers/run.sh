#!/usr/bin/env bash
# mproc against its peers, in one invocation: C raw transports and locks,
# Python multiprocessing, the Rust IPC crates, and mproc, interleaved round by
# round so that slow phases of the machine hit every contender alike. Prints one
# table of medians with mproc's ratio to each peer (report.py).
#
#   benches/peers/run.sh                 # 3 rounds, 200 ms per Rust measurement
#   ROUNDS=5 DUR_MS=250 benches/peers/run.sh
#
# Raw per-run records: results/raw.jsonl; the table: results/table.md.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-3}
DUR_MS=${DUR_MS:-200}
PY=${PYTHON:-python3}
mkdir -p results
out=results/raw.jsonl
: > "$out"

cargo build --release --quiet
gcc -O2 -std=gnu11 -Wall -Wextra -pthread -o baseline/raw_ipc baseline/raw_ipc.c
have_py=1
command -v "$PY" > /dev/null || have_py=0

machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(rustc --version)"
[ "$have_py" = 1 ] && machine="$machine, $($PY --version 2>&1)"
echo "{\"group\":\"meta\",\"machine\":\"$machine\",\"rounds\":$ROUNDS,\"dur_ms\":$DUR_MS,\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out"

start=$(date +%s)
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS ($(( $(date +%s) - start )) s elapsed)" >&2
    echo "{\"group\":\"round\",\"n\":$r}" >> "$out"
    ./target/release/mproc-peers --runs 1 --dur-ms "$DUR_MS" >> "$out"
    ./baseline/raw_ipc 1 throughput >> "$out"
    ./baseline/raw_ipc 1 latency    >> "$out"
    ./baseline/raw_ipc 1 locks      >> "$out"
    if [ "$have_py" = 1 ]; then
        "$PY" baseline/py_ipc.py 1 throughput-lite >> "$out"
        "$PY" baseline/py_ipc.py 1 latency         >> "$out"
        "$PY" baseline/py_lock.py 1                >> "$out"
        "$PY" baseline/py_ticket.py 1 loop-tmpfs   >> "$out"
    fi
done
echo "{\"group\":\"meta\",\"wall_s\":$(( $(date +%s) - start )),\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out"
echo "== done in $(( $(date +%s) - start )) s" >&2

"$PY" report.py "$out" | tee results/table.md
