#!/usr/bin/env python3
"""Import circles between the library's modules: builds the graph of
`use crate::…` (and `super::…`) references between module files of
crates/mproc/src, ignoring a module's references to its own ancestors and
descendants, and fails listing every strongly connected set of more than
one module. Also fails on `libc::` outside `sys/`.

Usage: python3 .ci/import-circles.py [crates/mproc/src]
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "crates/mproc/src"
mods = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if f.endswith(".rs"):
            path = os.path.join(dirpath, f)
            parts = os.path.relpath(path, root)[:-3].split("/")
            if parts[-1] in ("mod", "lib"):
                parts = parts[:-1]
            mods["::".join(parts) or "crate"] = open(path).read()

graph = {}
bad_libc = []
for m, src in mods.items():
    code = re.split(r"#\[cfg\(test\)\]\s*mod tests", src)[0]
    # Doc comments and comments name modules without depending on them.
    code = "\n".join(l for l in code.split("\n") if not l.lstrip().startswith("//"))
    if "libc::" in code and not m.startswith("sys"):
        bad_libc.append(m)
    refs = set(re.findall(r"crate::((?:[a-z_]+::)*[a-z_]+)", code))
    parent = "::".join(m.split("::")[:-1])
    for r in re.findall(r"\bsuper::((?:[a-z_]+::)*[a-z_]+)", code):
        refs.add((parent + "::" if parent else "") + r)
    for r in refs:
        parts = r.split("::")
        for k in range(len(parts), 0, -1):
            target = "::".join(parts[:k])
            if target in mods:
                related = (target == m or target.startswith(m + "::")
                           or m.startswith(target + "::"))
                if not related:
                    graph.setdefault(m, set()).add(target)
                break

index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            circles.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(mods):
    if v not in index:
        visit(v)

for c in circles:
    print("import circle:", " <-> ".join(c))
    for a in c:
        print("   ", a, "->", ", ".join(sorted(b for b in graph.get(a, ()) if b in c)))
for m in bad_libc:
    print(f"libc:: outside sys/: {m}")
edges = sum(len(v) for v in graph.values())
print(f"{len(mods)} modules, {edges} dependencies, {len(circles)} circles, "
      f"{len(bad_libc)} modules calling libc outside sys/")
sys.exit(1 if circles or bad_libc else 0)
