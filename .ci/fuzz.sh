#!/usr/bin/env bash
# A short fuzz run that CI can afford: each target of fuzz/ for
# FUZZ_SECONDS (default 25) with cargo-fuzz (libFuzzer + AddressSanitizer,
# on the stable toolchain through RUSTC_BOOTSTRAP), starting from the
# committed corpus. Without cargo-fuzz, the stable `replay` driver runs the
# corpus and random mutations of it for about as long instead.
# Any crash, panic, abort or hang (10 s for one input) fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECONDS:-25}"
targets=(segment_bytes segment_mutate)

# The drivers' namespaces, removed on exit (libFuzzer exits without
# running destructors).
base="$(mktemp -d "${TMPDIR:-/tmp}/mproc-fuzz-ci.XXXXXX")"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  rm -rf "$base"
  base="$(mktemp -d /dev/shm/mproc-fuzz-ci.XXXXXX)"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/mproc-fuzz-work.XXXXXX")"
trap 'rm -rf "$base" "$work"' EXIT
export MPROC_FUZZ_DIR="$base"

if command -v cargo-fuzz >/dev/null 2>&1 \
  && RUSTC_BOOTSTRAP=1 cargo fuzz build --features libfuzzer -O >"$work/build.log" 2>&1; then
  for t in "${targets[@]}"; do
    echo "== fuzz $t (${secs} s, libFuzzer)"
    mkdir -p "$work/$t"
    # New inputs go to the scratch directory; the committed corpus is read only.
    if RUSTC_BOOTSTRAP=1 cargo fuzz run --features libfuzzer -O "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -close_fd_mask=1 >"$work/$t.log" 2>&1; then
      grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$work/$t.log" || true
      echo "fuzz $t: no crash, panic or hang"
    else
      tail -60 "$work/$t.log" >&2
      echo "fuzz $t: FAILED (the input is in fuzz/artifacts/$t)" >&2
      exit 1
    fi
  done
else
  if command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo fuzz build failed; falling back to the stable replay driver:" >&2
    tail -5 "$work/build.log" >&2
  else
    echo "cargo-fuzz is not installed; running the stable replay driver instead"
  fi
  cargo build --release --bin replay --target-dir target 2>&1 | tail -1
  for t in "${targets[@]}"; do
    echo "== replay $t: corpus, then random inputs for ${secs} s"
    target/release/replay "$t" "corpus/$t"
    end=$((SECONDS + secs))
    seed=1
    while [ "$SECONDS" -lt "$end" ]; do
      timeout 60 target/release/replay "$t" --random 500 --seed "$seed" >/dev/null
      seed=$((seed + 1))
    done
    echo "replay $t: $((seed - 1)) batches of 500 random inputs, no failure"
  done
fi
