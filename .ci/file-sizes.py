#!/usr/bin/env python3
"""File sizes: counts each Rust source file's non-test code lines (the lines
before its first `#[cfg(test)]` line, leaving out blank lines and lines that
are only a comment: `//`, `///`, `//!`) under the given source roots,
skipping `tests/` directories and `target/`.

A file of more than 700 such lines fails unless its module doc (the leading
`//!` block) has a paragraph beginning `Why one file:` that gives the
reason. Prints one line per file of more than 500 lines (path, count, and
"ok", "reason given" or "TOO LONG") and a summary line; exits 1 if any file
is TOO LONG.

Usage: python3 .ci/file-sizes.py [ROOT ...]
  (default: crates/mproc/src crates/mproc-cli/src crates/mproc-py/src
   benches/peers/src fuzz)
"""
import os
import re
import sys

DEFAULT_ROOTS = [
    "crates/mproc/src",
    "crates/mproc-cli/src",
    "crates/mproc-py/src",
    "benches/peers/src",
    "fuzz",
]
SKIP_DIRS = {"tests", "target"}
REPORT_OVER = 500
LIMIT = 700
REASON = "Why one file:"


def rust_files(root):
    if os.path.isfile(root):
        return [root] if root.endswith(".rs") else []
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".rs")]
    return out


def code_lines(lines):
    """Non-blank, non-comment lines before the first `#[cfg(test)]` line."""
    n = 0
    for line in lines:
        s = line.strip()
        if s.startswith("#[cfg(test)]"):
            break
        if s and not s.startswith("//"):
            n += 1
    return n


def module_doc(lines):
    """The text of the leading `//!` block, one string per line."""
    doc, started = [], False
    for line in lines:
        s = line.strip()
        if s.startswith("//!"):
            started = True
            doc.append(s[3:].strip())
        elif started or s:
            break
    return doc


def gives_reason(doc):
    """Whether a paragraph of the doc begins `Why one file:` with a reason."""
    for i, text in enumerate(doc):
        starts_paragraph = i == 0 or doc[i - 1] == ""
        if starts_paragraph and text.startswith(REASON):
            rest = text[len(REASON):].strip()
            following = doc[i + 1] if i + 1 < len(doc) else ""
            if rest or following:
                return True
    return False


def main(roots):
    missing = [r for r in roots if not os.path.exists(r)]
    for r in missing:
        print(f"note: {r} does not exist; skipped")
    files = sorted({f for r in roots if r not in missing for f in rust_files(r)})
    counts = {"ok": 0, "reason given": 0, "TOO LONG": 0}
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
        n = code_lines(lines)
        if n <= REPORT_OVER:
            continue
        if n <= LIMIT:
            verdict = "ok"
        elif gives_reason(module_doc(lines)):
            verdict = "reason given"
        else:
            verdict = "TOO LONG"
        counts[verdict] += 1
        print(f"{path}: {n} lines, {verdict}")
    print(
        f"{len(files)} files, {sum(counts.values())} over {REPORT_OVER} lines: "
        f"{counts['ok']} ok, {counts['reason given']} over {LIMIT} with a reason, "
        f"{counts['TOO LONG']} too long (over {LIMIT} without \"{REASON}\")"
    )
    return 1 if counts["TOO LONG"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEFAULT_ROOTS))
