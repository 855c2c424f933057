#!/usr/bin/env python3
"""Import circles between a crate's modules: builds the graph of
`use crate::…` (and `super::…`) references, brace groups included
(`crate::{a, b::c}`), between the module files under a source root (the
library's crates/mproc/src, the CLI's crates/mproc-cli/src), ignoring a
module's references to its own ancestors and descendants, and fails listing
every strongly connected set of more than one module. Also fails on
`libc::` outside the module named `sys` (`sys.rs` or `sys/`) and its
submodules.

Usage: python3 .ci/import-circles.py [SOURCE_ROOT]   (default crates/mproc/src)
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
            # The crate root is lib.rs, or main.rs for a binary crate.
            if parts[-1] in ("mod", "lib") or parts == ["main"]:
                parts = parts[:-1]
            mods["::".join(parts) or "crate"] = open(path).read()


def split_top(text):
    """Splits a brace group's inside at its top-level commas."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return items


def expand(prefix, text):
    """The paths a `use` tree names: `a::{b, c::{d}}` after `prefix`."""
    text = text.strip()
    m = re.match(r"((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{", text)
    if m and text.endswith("}"):
        head = prefix + m.group(1)
        out = []
        for item in split_top(text[m.end():-1]):
            out += expand(head, item)
        return out
    path = re.match(r"(?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*", text)
    if not path:
        return [prefix.rstrip(":")] if prefix else []
    full = prefix + path.group(0)
    if full.endswith("::self"):
        full = full[: -len("::self")]
    return [full]


def brace_groups(code, root):
    """The paths named inside `root::…{…}` groups (nested groups too)."""
    out = []
    for m in re.finditer(r"\b" + root + r"::((?:[a-z_][a-z0-9_]*::)*)\{", code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        out += expand(m.group(1), code[m.end() - 1:i])
    return out


def lowercase_prefix(path):
    """The leading module part of a path (its lowercase segments)."""
    parts = []
    for p in path.split("::"):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", p):
            break
        parts.append(p)
    return "::".join(parts)


graph = {}
bad_libc = []
for m, src in mods.items():
    code = re.split(r"#\[cfg\(test\)\]\s*mod tests", src)[0]
    # Doc comments and comments name modules without depending on them.
    code = "\n".join(l for l in code.split("\n") if not l.lstrip().startswith("//"))
    if "libc::" in code and not (m == "sys" or m.startswith("sys::")):
        bad_libc.append(m)
    refs = set(re.findall(r"crate::((?:[a-z_]+::)*[a-z_]+)", code))
    refs.update(filter(None, map(lowercase_prefix, brace_groups(code, "crate"))))
    parent = "::".join(m.split("::")[:-1])
    supers = set(re.findall(r"\bsuper::((?:[a-z_]+::)*[a-z_]+)", code))
    supers.update(filter(None, map(lowercase_prefix, brace_groups(code, "super"))))
    for r in supers:
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
