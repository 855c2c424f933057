#!/usr/bin/env python3
"""mproc's rows of two peer-harness runs taken round by round together
(compare.sh): both medians, and the median and spread of the per-round
ratio new / old (above 1: the new build measured more; for times, more is
slower).

Usage: compare.py OLD.jsonl NEW.jsonl
"""
import collections
import json
import statistics
import sys

METRICS = ("msgs", "ops", "median_us", "p99_us", "cpu_us_per_rt",
           "longest_wait_ms", "smallest_share", "handoffs")


def load(path):
    rounds = collections.defaultdict(dict)
    r = 0
    for line in open(path):
        d = json.loads(line)
        if d.get("group") == "round":
            r = d["n"]
            continue
        c = d.get("contender", "")
        if "mproc" not in c:
            continue
        key = (d["group"], c, str(d.get("procs", "")), str(d.get("size", "")))
        for m in METRICS:
            if isinstance(d.get(m), (int, float)):
                rounds[r][key + (m,)] = d[m]
    return rounds


old, new = load(sys.argv[1]), load(sys.argv[2])
keys = sorted(set().union(*[set(v) for v in new.values()]))
print(f"{'row':72} {'old':>10} {'new':>10}  new/old per round")
for k in keys:
    pairs = [(old[r][k], new[r][k]) for r in sorted(new) if k in new[r] and k in old.get(r, {})]
    if not pairs:
        continue
    ratios = [n / o for o, n in pairs if o]
    label = " ".join(x for x in k if x)
    print(f"{label:72} {statistics.median(o for o, _ in pairs):10.4g} "
          f"{statistics.median(n for _, n in pairs):10.4g}  "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})")
