#!/usr/bin/env bash
# Before and after in one run: the peer harness built at two commits (this
# checkout, and OLD_CHECKOUT: e.g. a `git worktree` of the earlier commit),
# alternating round by round (which goes first alternates too), with the C
# and Python peers measured once per round and given to both. Prints, per
# mproc row, both medians and the per-round ratio new ÷ old (compare.py);
# the per-round ratio is the figure to judge by on a noisy machine.
#
#   git worktree add /tmp/old <commit>
#   ROUNDS=6 DUR_MS=200 benches/peers/compare.sh /tmp/old
#
# Records and tables: results/compare/{old,new}.jsonl, {old,new}.md,
# compare.txt.
set -euo pipefail
ROUNDS=${ROUNDS:-4}
DUR_MS=${DUR_MS:-200}
PY=${PYTHON:-python3}
OLD=$(cd "${1:?usage: compare.sh OLD_CHECKOUT}/benches/peers" && pwd)
cd "$(dirname "$0")"
NEW=$PWD

cargo build --release --quiet
(cd "$OLD" && cargo build --release --quiet)
gcc -O2 -std=gnu11 -Wall -Wextra -pthread -o baseline/raw_ipc baseline/raw_ipc.c

out=results/compare
mkdir -p "$out"
for f in old new; do
    echo "{\"group\":\"meta\",\"machine\":\"$(nproc) CPUs\",\"rounds\":$ROUNDS,\"dur_ms\":$DUR_MS,\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" > "$out/$f.jsonl"
done
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    for f in old new; do echo "{\"group\":\"round\",\"n\":$r}" >> "$out/$f.jsonl"; done
    if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for f in $order; do
        d=$OLD
        [ "$f" = new ] && d=$NEW
        "$d/target/release/mproc-peers" --runs 1 --dur-ms "$DUR_MS" >> "$out/$f.jsonl"
    done
    peers=$(mktemp)
    ./baseline/raw_ipc 1 throughput >> "$peers"
    ./baseline/raw_ipc 1 latency >> "$peers"
    ./baseline/raw_ipc 1 locks >> "$peers"
    "$PY" baseline/py_ipc.py 1 throughput-lite >> "$peers"
    "$PY" baseline/py_ipc.py 1 latency >> "$peers"
    "$PY" baseline/py_lock.py 1 >> "$peers"
    "$PY" baseline/py_ticket.py 1 loop-tmpfs >> "$peers"
    cat "$peers" >> "$out/old.jsonl"
    cat "$peers" >> "$out/new.jsonl"
    rm "$peers"
done
for f in old new; do
    echo "{\"group\":\"meta\",\"wall_s\":0,\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out/$f.jsonl"
    "$PY" report.py "$out/$f.jsonl" > "$out/$f.md"
done
"$PY" compare.py "$out/old.jsonl" "$out/new.jsonl" | tee "$out/compare.txt"
