//! The documents a newcomer reads: links that resolve, snippets that can be
//! copied as they are, options that are documented. (The Rust snippets of
//! README.md, CLI.md, REDIS.md and RELIABILITY.md are compiled and run as
//! doctests from `lib.rs`.)

use std::path::Path;

fn read(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines of the ```rust blocks of a Markdown text.
fn rust_lines(md: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in md.lines() {
        if line.starts_with("```") {
            inside = !inside && line.starts_with("```rust");
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    out
}

#[test]
fn readme_links_resolve() {
    let readme = read("README.md");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for link in readme.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        assert!(
            root.join(target).exists(),
            "README links {target}, which does not exist"
        );
    }
}

#[test]
fn readme_snippets_have_no_hidden_lines_and_clean_up() {
    let readme = read("README.md");
    for line in rust_lines(&readme) {
        // Hidden lines are visible to readers of the Markdown, and
        // `set_var` is unsafe in edition 2024.
        assert!(!line.starts_with("# "), "hidden line in README: {line}");
        assert!(!line.contains("set_var"), "set_var in README: {line}");
    }
    // The ticket example removes the file it makes.
    let tickets = &readme[readme.find("### Ticket grabbing").unwrap()..];
    let tickets = &tickets[..tickets.find("\n### ").unwrap()];
    assert!(tickets.contains("remove_file(&file)"), "{tickets}");
}

#[test]
fn cli_md_documents_every_consume_option() {
    let cli = read("crates/mproc-cli/CLI.md");
    for opt in ["--tries", "--halt", "-j N", "--leased"] {
        assert!(cli.contains(opt), "CLI.md does not mention {opt}");
    }
    assert!(
        !cli.contains("ByteQueue::open(\""),
        "CLI.md names an API that does not exist"
    );
}
